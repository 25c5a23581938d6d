"""Exact integer kernels of the emulation: plane convolutions and table-lookup sums.

Everything here computes integers exactly; floating point is used only where every
intermediate value is an integer of magnitude below 2^24 (float32) or 2^53 (float64), which
the caller guarantees with static bounds (see `emulate`).

- `plane_conv`: the convolution of 8-bit feature planes with int8 weights. Two backends:

  * ``onednn``: PyTorch's oneDNN quantized convolution (``torch.ops.onednn.qconv2d_pointwise``,
    uint8 x int8 with int32 accumulation, output converted to float32 with unit scales). It is
    used only on CPU, only after `onednn_exact` has verified, once per process, that it
    returns exact integers on extreme operands, and each pass only after `PlanePass.verify`
    has checked it on its own weights with all-255 inputs (some CPUs without VNNI saturate
    16-bit pair sums in u8 x s8 kernels; such passes fall back to the float backend).
  * ``float``: ``torch.nn.functional.conv2d`` on the centred features in float32 (CPU; direct
    and GEMM convolutions are exact below 2^24) or float64 rounded to integers (other
    devices, where Winograd/FFT/TF32 algorithms may be chosen; their float64 error is far
    below 0.5 for integers below 2^24).

- `table_sum`: ``sum_k T[k, i_k, :]`` over the receptive field with
  ``torch.nn.functional.embedding_bag`` (mode "sum") on a per-layer table whose row
  ``(k, i)`` holds the residual of every output channel; the bags are the im2col of the
  activation indices.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

EXACT_F32 = 2**24
FEATURE_ZERO = 128  # stored uint8 feature = centred feature + 128
INDEX_CHUNK = 1 << 24  # activation-index entries per embedding-bag call (int32: 64 MiB)


def im2col_view(xp: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                dilation: tuple[int, int], out_hw: tuple[int, int]) -> torch.Tensor:
    """View (N, Ho, Wo, kh, kw, C) of a contiguous padded (N, Hp, Wp, C) tensor."""
    n, hp, wp, c = xp.shape
    s0, s1, s2, _ = xp.stride()
    return xp.as_strided((n, out_hw[0], out_hw[1], kernel[0], kernel[1], c),
                         (s0, stride[0] * s1, stride[1] * s2, dilation[0] * s1,
                          dilation[1] * s2, 1))


@functools.cache
def onednn_exact() -> bool:
    """Whether oneDNN's quantized convolution is available here and exact on extreme values."""
    try:
        ops = torch.ops.onednn
        if not (hasattr(ops, "qconv_prepack") and hasattr(ops, "qconv2d_pointwise")):
            return False
        if not torch.backends.mkldnn.is_available():
            return False
        gen = torch.Generator().manual_seed(20240)
        for channels, out, groups in ((48, 24, 1), (16, 8, 4), (8, 8, 8), (256, 16, 1)):
            extreme = torch.rand((2, channels, 7, 7), generator=gen) < 0.6
            x = torch.randint(0, 256, (2, channels, 7, 7), generator=gen, dtype=torch.int32)
            x = torch.where(extreme, 255, x).to(torch.uint8)
            wshape = (out, channels // groups, 3, 3)
            w = torch.randint(-128, 128, wshape, generator=gen, dtype=torch.int32)
            w = torch.where(torch.rand(wshape, generator=gen) < 0.3, 127, w)
            w = torch.where(torch.rand(wshape, generator=gen) < 0.3, -128, w).to(torch.int8)
            op = OneDnnConv(w, (1, 1), (1, 1), groups)
            got = op(x.contiguous(memory_format=torch.channels_last), None)
            ref = F.conv2d(x.double() - FEATURE_ZERO, w.double(), None, 1, 0, 1, groups)
            if not torch.equal(got, ref.to(torch.float32)):  # float32 of the exact sums
                return False
        return True
    except Exception:  # any failure means: do not use this backend
        return False


def cpu_float32_exact() -> bool:
    """Whether CPU float32 convolutions run in IEEE float32 (no bf16/tf32 "fast math")."""
    conv = getattr(torch.backends.mkldnn, "conv", None)
    precision = str(getattr(conv, "fp32_precision", "none")).lower()
    return precision in ("none", "ieee")


class OneDnnConv:
    """A prepacked oneDNN u8 x s8 convolution, input zero point 128, output float32.

    ``out = float32(sum (x - 128) * w) + bias`` per output channel (unit scales).
    """

    def __init__(self, weight: torch.Tensor, stride: tuple[int, int],
                 dilation: tuple[int, int], groups: int) -> None:
        out = weight.shape[0]
        self.w_scale = torch.ones(out, dtype=torch.float64)
        self.w_zero = torch.zeros(out, dtype=torch.int64)
        self.stride, self.dilation, self.groups = list(stride), list(dilation), groups
        self.packed = torch.ops.onednn.qconv_prepack(
            weight.contiguous(), self.w_scale, 1.0, FEATURE_ZERO, self.stride, [0, 0],
            self.dilation, groups, None)

    def __call__(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return torch.ops.onednn.qconv2d_pointwise(
            x, 1.0, FEATURE_ZERO, self.packed, self.w_scale, self.w_zero, bias, self.stride,
            [0, 0], self.dilation, self.groups, 1.0, 0, torch.float32, "none", [], "")


@dataclass
class PlanePass:
    """One convolution over R stacked feature planes (channel c * R + r), times 2^shift.

    Attributes:
        lut: (256, R) uint8 stored features (centred feature + 128); None = identity
            (R = 1 and the feature is the index itself).
        weight: (O, (C / groups) * R, kh, kw) int8 weights.
        shift: power-of-two multiplier of the pass output.
        backend: "onednn", "float32" or "float64".
    """

    lut: torch.Tensor | None
    weight: torch.Tensor
    shift: int
    backend: str
    stride: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    _op: object = None
    _float_lut: torch.Tensor | None = None
    _float_weight: torch.Tensor | None = None

    def prepare(self) -> None:
        """Build the backend's operands (prepacked weights or float tensors)."""
        if self.backend == "onednn":
            self._op = OneDnnConv(self.weight, self.stride, self.dilation, self.groups)
            return
        dtype = torch.float32 if self.backend == "float32" else torch.float64
        lut = self.lut if self.lut is not None else torch.arange(
            256, dtype=torch.int16, device=self.weight.device)[:, None]
        self._float_lut = (lut.to(torch.int16) - FEATURE_ZERO).to(dtype)  # centred features
        self._float_weight = self.weight.to(dtype)

    def verify(self) -> bool:
        """oneDNN only: exact on this pass's own weights with all-255 and random features?

        All-255 features maximise every same-sign pair of products, the case that saturates
        16-bit pair sums in u8 x s8 kernels without VNNI; the check compares against a
        float64 convolution (rounded to float32, as the pass's output is).
        """
        cin = self.weight.shape[1] * self.groups
        kh, kw = self.weight.shape[2:]
        size = (1, cin, self.dilation[0] * (kh - 1) + 1 + self.stride[0],
                self.dilation[1] * (kw - 1) + 1 + self.stride[1])
        gen = torch.Generator().manual_seed(7)
        for x in (torch.full(size, 255, dtype=torch.uint8),
                  torch.randint(0, 256, size, generator=gen, dtype=torch.uint8)):
            got = self._op(x.contiguous(memory_format=torch.channels_last), None)
            ref = F.conv2d(x.double() - FEATURE_ZERO, self.weight.double(), None, self.stride,
                           0, self.dilation, self.groups)
            if not torch.equal(got, ref.to(torch.float32)):
                return False
        return True

    def features(self, xp: torch.Tensor, flat: torch.Tensor | None) -> torch.Tensor:
        """(N, Hp, Wp, C) padded indices -> (N, C * R, Hp, Wp) planes (channels-last view).

        ``flat`` is ``xp`` flattened to int32 (for the table lookup of the features).
        """
        n, hp, wp, c = xp.shape
        if self.lut is None:
            planes = xp if self.backend == "onednn" else (
                xp.to(self._float_lut.dtype).sub_(FEATURE_ZERO))
        else:
            lut = self.lut if self.backend == "onednn" else self._float_lut
            planes = lut.index_select(0, flat)
        return planes.view(n, hp, wp, -1).permute(0, 3, 1, 2)

    def __call__(self, xp: torch.Tensor, flat: torch.Tensor | None,
                 bias: torch.Tensor | None) -> torch.Tensor:
        """Exact integer output (N, O, Ho, Wo), float32 or float64, bias (float) added."""
        planes = self.features(xp, flat)
        if self.backend == "onednn":
            return self._op(planes, bias)
        out = F.conv2d(planes, self._float_weight, bias, self.stride, 0, self.dilation,
                       self.groups)
        if out.device.type != "cpu":
            out = out.round_()
        return out


def plane_conv(passes: list[PlanePass], xp: torch.Tensor, bias: torch.Tensor,
               acc_dtype: torch.dtype) -> torch.Tensor:
    """Sum of the passes' outputs times 2^shift, plus bias, as an exact ``acc_dtype`` tensor.

    Args:
        passes: the plane convolutions (at least one).
        xp: padded activation indices (N, Hp, Wp, C) uint8.
        bias: (O,) integer-valued float64 tensor (the per-channel constant).
        acc_dtype: float32 when every partial sum is below 2^24, else float64.

    Returns:
        (N, O, Ho, Wo) tensor of dtype acc_dtype holding exact integers.
    """
    acc = None
    flat = None
    if any(p.lut is not None for p in passes):
        flat = xp.reshape(-1).to(torch.int32)
    for p in passes:
        out_dtype = torch.float64 if p.backend == "float64" else torch.float32
        fold = acc is None and p.shift == 0 and out_dtype == acc_dtype
        out = p(xp, flat, bias.to(out_dtype) if fold else None)
        if out.dtype != acc_dtype:
            out = out.to(acc_dtype)
        if p.shift:
            out.mul_(2.0**p.shift)
        if acc is None:
            acc = out if fold else out.add_(bias.to(acc_dtype).view(1, -1, 1, 1))
        else:
            acc.add_(out)
    return acc


@dataclass
class ResidualTable:
    """The residual of a layer as lookup tables for `table_sum`, in reduction chunks.

    For reduction entries k0..k1 of every group g (k in (kh, kw, c) order), the chunk table
    (G * kc * 256, D * O / G) holds at row ``(g * kc + k - k0) * 256 + i`` the D digits of the
    residual ``R[i, w[o, k]]`` of the group's output channels o (digit-major). One float32
    digit when every sum stays below 2^24; else two, ``R = 2^shift * high + low`` with
    ``0 <= low < 2^shift``, each summing exactly in float32 (float64 as a last resort). Chunk
    tables are built once and kept when the whole table fits `TABLE_KEEP` bytes, else built
    on the fly at each call, `chunk` entries at a time (at most `TABLE_CHUNK` bytes each).

    Attributes:
        digits: (D, 256, 255) float32/float64 residual digits at [d, i, w + 127].
        columns: (G, Kg, O / G) int64 residual column (w + 127) of every weight.
        chunk: kc, reduction entries per chunk table.
        shift: weight 2^shift of the high digit (D = 2).
        kept: the chunk tables when kept, else None.
    """

    digits: torch.Tensor
    columns: torch.Tensor
    chunk: int
    shift: int = 0
    kept: list[torch.Tensor] | None = None

    @property
    def groups(self) -> int:
        return self.columns.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes held (kept tables, or the digits and the columns when streaming)."""
        held = [self.digits, self.columns] + (self.kept or [])
        return sum(t.numel() * t.element_size() for t in held)

    def table(self, start: int) -> torch.Tensor:
        """Chunk table of reduction entries start .. start + chunk."""
        if self.kept is not None:
            return self.kept[start // self.chunk]
        g, _, og = self.columns.shape
        cols = self.columns[:, start:start + self.chunk].reshape(-1, 1, og)  # (G * kc, 1, Og)
        blocks = cols.shape[0]
        parts = [torch.gather(d.expand(blocks, 256, d.shape[1]), 2, cols.expand(blocks, 256, og))
                 for d in self.digits]  # each (G * kc, 256, Og)
        table = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
        return table.view(-1, table.shape[2])

    def offsets(self, start: int) -> torch.Tensor:
        """(G, kc) int32 row offsets (g * kc + k) * 256 of a chunk."""
        g, kg, _ = self.columns.shape
        kc = min(self.chunk, kg - start)
        rows = torch.arange(g * kc, dtype=torch.int32, device=self.columns.device) * 256
        return rows.view(g, kc)

    def combine(self, sums: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(bags, D * Og) digit sums -> (bags, Og) exact sums in dtype."""
        if self.digits.shape[0] == 1:
            return sums.to(dtype)
        og = self.columns.shape[2]
        high, low = sums[:, :og].to(dtype), sums[:, og:].to(dtype)
        return high.mul_(2.0**self.shift).add_(low)


TABLE_KEEP = 64 << 20  # keep a layer's residual tables up to this many bytes
TABLE_CHUNK = 16 << 20  # else build chunk tables of at most this many bytes per call


def build_residual_table(residual: torch.Tensor, weight_codes: torch.Tensor,
                         groups: int) -> ResidualTable:
    """Residual tables of a layer, with exact float32 digits when possible.

    Args:
        residual: (256, 255) int64 residual R[i, w + 127] (0 on invalid rows).
        weight_codes: (O, Cg, kh, kw) int8.
        groups: convolution groups G.
    """
    o, cg, kh, kw = weight_codes.shape
    og = o // groups
    columns = weight_codes.reshape(groups, og, cg, kh, kw).permute(0, 3, 4, 2, 1)
    columns = columns.reshape(groups, kh * kw * cg, og).long() + 127  # (G, Kg, Og)
    kg = columns.shape[1]
    peak = residual.abs().max(dim=0).values  # per weight code
    bound = int(peak[columns].sum(dim=1).max()) if kg else 0
    shift = 0
    if bound < EXACT_F32:
        digits = residual.to(torch.float32)[None]
    else:
        shift = max(0, (EXACT_F32 // (kg + 1)).bit_length() - 1)  # kg * 2^shift < 2^24
        low = torch.remainder(residual, 2**shift)
        high = torch.div(residual - low, 2**shift, rounding_mode="floor")
        high_bound = int(high.abs().max(dim=0).values[columns].sum(dim=1).max())
        if high_bound < EXACT_F32:
            digits = torch.stack([high, low]).to(torch.float32)
        else:
            shift, digits = 0, residual.to(torch.float64)[None]
    row_bytes = groups * 256 * og * digits.shape[0] * digits.element_size()
    res = ResidualTable(digits, columns, kg, shift)
    if kg * row_bytes <= TABLE_KEEP:
        res.kept = [res.table(0)]
        return res
    res.chunk = max(1, TABLE_CHUNK // row_bytes)
    return res


def _blocks(n: int, ho: int, per_row: int) -> list[tuple[int, int, int, int]]:
    """(n0, n1, r0, r1) blocks of images x output rows with about INDEX_CHUNK entries each."""
    rows_per = max(1, INDEX_CHUNK // max(1, per_row))
    if rows_per < ho:  # large images: blocks of output rows of one image
        return [(i, i + 1, r, min(ho, r + rows_per)) for i in range(n)
                for r in range(0, ho, rows_per)]
    step = max(1, rows_per // ho)
    return [(i, min(n, i + step), 0, ho) for i in range(0, n, step)]


def table_sum(res: ResidualTable, xp: torch.Tensor, kernel: tuple[int, int],
              stride: tuple[int, int], dilation: tuple[int, int], out_hw: tuple[int, int],
              acc: torch.Tensor) -> None:
    """Add ``sum_k R[i_k, w_ok]`` to ``acc`` (N, O, Ho, Wo), in place.

    The bags (im2col of the indices plus row offsets, int32) are built for blocks of about
    `INDEX_CHUNK` entries (images, or output rows of large images).
    """
    g, kg, og = res.columns.shape
    kh, kw = kernel
    ho, wo = out_hw
    full = im2col_view(xp, kernel, stride, dilation, out_hw)  # (N, Ho, Wo, kh, kw, C)
    for n0, n1, r0, r1 in _blocks(xp.shape[0], ho, wo * g * kg):
        view = full[n0:n1, r0:r1]
        m, hr = view.shape[0], view.shape[1]
        view = view.reshape(m, hr, wo, kh, kw, g, -1).permute(0, 1, 2, 5, 3, 4, 6)
        bags = m * hr * wo * g
        if res.chunk >= kg:  # one table: int32 bags straight from the strided view
            index = torch.empty(view.shape, dtype=torch.int32, device=xp.device)
            torch.add(res.offsets(0).view(g, kh, kw, -1), view, out=index)  # contiguous
            sums = F.embedding_bag(index.view(bags, kg), res.table(0), mode="sum")
        else:  # streamed chunk tables: a uint8 copy of the bags, then chunk by chunk
            codes = view.reshape(bags // g, g, kg)
            sums = None
            for k0 in range(0, kg, res.chunk):
                index = torch.add(res.offsets(k0), codes[:, :, k0:k0 + res.chunk])
                part = F.embedding_bag(index.reshape(bags, -1), res.table(k0), mode="sum")
                sums = part if sums is None else sums.add_(part)
        sums = res.combine(sums.view(bags, -1), acc.dtype)
        sums = sums.view(m, hr, wo, g * og).permute(0, 3, 1, 2)
        acc[n0:n1, :, r0:r1].add_(sums)
