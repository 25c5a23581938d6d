"""Site statistics: what the calibration pass records about a site's clean values.

Error models ask for what they need when they are resolved for a site
(`ErrorModel.resolve(stats)`): a relative Gaussian its `std`, an int8 bit flip its
`absmax` (per tensor or per channel), a quantized layer its `min`/`max` or a percentile of
the `sample`.

>>> acc = StatsAccumulator(channel_dim=1)
>>> acc.add(torch.tensor([[1.0, -2.0], [3.0, 0.0]]))
>>> acc.result().absmax, acc.result().channel_zero_frac.tolist()
(3.0, [0.0, 0.5])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SAMPLE_SIZE = 65_536  # values kept for percentiles (a deterministic strided subsample)
_PER_ADD = 8_192


@dataclass(frozen=True)
class SiteStats:
    """Moments and ranges of the clean values seen at a site (all in the site's own units).

    Scalars cover every value; `channel_*` tensors (float64, shape (C,)) cover each channel
    along the site's channel dimension (dim 1 of activations, the output-channel dimension
    of weights); `sample` (float32, at most SAMPLE_SIZE values) is a deterministic strided
    subsample for percentiles. `channel_dim` is the dimension the channels were taken
    along: 1 for activations (dim 0 is the batch), 0 for parameters (out-channel view).
    NaN and Inf values are left out of all of them and counted in `nonfinite`.
    """

    count: int
    mean: float
    std: float
    min: float
    max: float
    absmax: float
    channel_mean: torch.Tensor
    channel_std: torch.Tensor
    channel_min: torch.Tensor
    channel_max: torch.Tensor
    channel_absmax: torch.Tensor
    channel_abs_mean: torch.Tensor
    channel_zero_frac: torch.Tensor
    sample: torch.Tensor
    channel_dim: int = 1
    nonfinite: int = 0

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100) of the sampled values (NaN when nothing was seen)."""
        if not len(self.sample):
            return math.nan
        return float(torch.quantile(self.sample.double(), q / 100.0))

    @classmethod
    def of(cls, tensor: torch.Tensor, channel_dim: int = 1) -> SiteStats:
        """The statistics of one tensor (e.g. to resolve a relative error model by hand)."""
        acc = StatsAccumulator(channel_dim)
        acc.add(tensor)
        return acc.result()


class StatsAccumulator:
    """Streams tensors of a site and returns their SiteStats (float64 accumulation).

    NaN and Inf values (e.g. a damaged weight) are left out of every moment, range and the
    sample, and counted in `SiteStats.nonfinite`: a relative error model is then scaled by
    the std of the finite values, and trials count the non-finite outputs (DUE) instead of
    failing to resolve their error model.
    """

    def __init__(self, channel_dim: int = 1) -> None:
        self.channel_dim = channel_dim
        self.n = 0
        self.nonfinite = 0
        self.s = self.ss = 0.0
        self.lo, self.hi = math.inf, -math.inf
        self.channels: dict[str, torch.Tensor] | None = None
        self.samples: list[torch.Tensor] = []
        self.sampled = 0

    def add(self, tensor: torch.Tensor) -> None:
        t = tensor.detach()
        if not t.numel():
            return
        d = t.double()
        finite = torch.isfinite(d)
        mask = None if bool(finite.all()) else finite
        if mask is not None:
            self.nonfinite += int((~mask).sum())
        values = d if mask is None else d[mask]
        if values.numel():
            self.n += values.numel()
            self.s += float(values.sum())
            self.ss += float((values * values).sum())
            self.lo = min(self.lo, float(values.min()))
            self.hi = max(self.hi, float(values.max()))
        self._add_channels(d, mask)
        self._add_sample(t if mask is None else t[mask.to(t.device)])

    def _add_channels(self, d: torch.Tensor, mask: torch.Tensor | None) -> None:
        if d.dim() <= self.channel_dim:
            return
        moved = d.movedim(self.channel_dim, 0).reshape(d.shape[self.channel_dim], -1)
        if mask is None:
            count = torch.full((moved.shape[0],), float(moved.shape[1]), dtype=torch.float64)
            lo_src = hi_src = moved
        else:
            keep = mask.movedim(self.channel_dim, 0).reshape(moved.shape)
            count = keep.sum(1).double()
            moved = torch.where(keep, moved, torch.zeros_like(moved))
            lo_src = torch.where(keep, moved, torch.full_like(moved, math.inf))
            hi_src = torch.where(keep, moved, torch.full_like(moved, -math.inf))
        part = {"n": count.to(moved.device), "s": moved.sum(1), "ss": (moved * moved).sum(1),
                "abs": moved.abs().sum(1), "zeros": (moved == 0).sum(1).double(),
                "lo": lo_src.min(1).values, "hi": hi_src.max(1).values}
        if mask is not None:  # the zeros put in place of NaN/Inf are not zeros of the site
            part["zeros"] -= (moved.shape[1] - count).to(moved.device)
        if self.channels is None:
            self.channels = {k: v.cpu() for k, v in part.items()}
            return
        for key in ("n", "s", "ss", "abs", "zeros"):
            self.channels[key] += part[key].cpu()
        self.channels["lo"] = torch.minimum(self.channels["lo"], part["lo"].cpu())
        self.channels["hi"] = torch.maximum(self.channels["hi"], part["hi"].cpu())

    def _add_sample(self, t: torch.Tensor) -> None:
        room = SAMPLE_SIZE - self.sampled
        if room <= 0 or not t.numel():
            return
        flat = t.flatten()
        step = max(1, flat.numel() // _PER_ADD)
        part = flat[::step][:room].float().cpu()
        self.samples.append(part)
        self.sampled += len(part)

    def result(self) -> SiteStats:
        n = max(self.n, 1)
        mean = self.s / n
        std = math.sqrt(max(self.ss / n - mean * mean, 0.0)) if self.n >= 2 else 0.0
        empty = torch.zeros(0, dtype=torch.float64)
        if self.channels is None:
            ch = dict.fromkeys(("mean", "std", "lo", "hi", "absmax", "abs", "zeros"), empty)
        else:
            c = self.channels
            m = c["n"].clamp_min(1)
            seen = c["n"] > 0
            cmean = c["s"] / m
            lo = torch.where(seen, c["lo"], torch.zeros_like(c["lo"]))
            hi = torch.where(seen, c["hi"], torch.zeros_like(c["hi"]))
            ch = {"mean": cmean, "std": (c["ss"] / m - cmean * cmean).clamp_min(0).sqrt(),
                  "lo": lo, "hi": hi, "absmax": torch.maximum(lo.abs(), hi.abs()),
                  "abs": c["abs"] / m, "zeros": c["zeros"] / m}
        lo = self.lo if self.n else 0.0
        hi = self.hi if self.n else 0.0
        sample = torch.cat(self.samples) if self.samples else torch.zeros(0)
        return SiteStats(self.n, mean, std, lo, hi, max(abs(lo), abs(hi)), ch["mean"], ch["std"],
                         ch["lo"], ch["hi"], ch["absmax"], ch["abs"], ch["zeros"], sample,
                         self.channel_dim, self.nonfinite)


__all__ = ["SAMPLE_SIZE", "SiteStats", "StatsAccumulator"]
