"""The fast emulation equals the table-gather reference bit for bit, for every configuration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from emul_helpers import make_layer
from sample_tables import broken_array, drum, random_table, truncated
from torch import nn

from approxmap.core.exceptions import InvalidParameterError
from approxmap.multipliers import kernels
from approxmap.multipliers.emulate import accumulate, emulate_forward, plan_for
from approxmap.multipliers.products import Table, exact_table
from approxmap.multipliers.quant import integer_conv_reference
from approxmap.multipliers.reference import reference_accumulate, reference_forward

# (name, module factory, input shape)
CONFIGS = [
    ("conv3x3-pad1", lambda: nn.Conv2d(6, 5, 3, padding=1), (2, 6, 9, 8)),
    ("stride2-pad2", lambda: nn.Conv2d(4, 6, 3, stride=2, padding=2), (2, 4, 11, 9)),
    ("dilation2", lambda: nn.Conv2d(5, 4, 3, padding=2, dilation=2), (2, 5, 10, 10)),
    ("rect-asym-stride", lambda: nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0)),
     (2, 3, 9, 7)),
    ("groups2", lambda: nn.Conv2d(6, 4, 3, padding=1, groups=2), (2, 6, 8, 8)),
    ("depthwise", lambda: nn.Conv2d(5, 5, 3, padding=1, groups=5, bias=False), (2, 5, 8, 8)),
    ("depthwise-x2", lambda: nn.Conv2d(3, 6, 3, stride=2, padding=1, groups=3), (2, 3, 9, 9)),
    ("pointwise", lambda: nn.Conv2d(7, 5, 1), (3, 7, 5, 5)),
    ("same", lambda: nn.Conv2d(4, 3, 4, padding="same"), (2, 4, 7, 7)),
    ("linear", lambda: nn.Linear(37, 11), (5, 37)),
    ("linear-3d", lambda: nn.Linear(16, 6, bias=False), (2, 3, 16)),
]

UNITS = {
    "exact": None,
    "trunc6u": truncated(6),
    "trunc8s": truncated(8, signed=True),
    "bam3-7u": broken_array(3, 7),
    "bam2-6s": broken_array(2, 6, signed=True),
    "drum4u": drum(4),
    "drum3s": drum(3, signed=True),
    "random40u": random_table(40, seed=1),
    "random40s": random_table(40, signed=True, seed=2),
}


def _input(shape, seed: int, relu: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen) * 1.5 + 0.3
    return x.relu() if relu else x


def _check(layer, x, unit) -> None:
    fast = accumulate(layer, layer.check_input(x)[0], unit)
    ref = reference_accumulate(layer, x, unit)
    assert fast.shape == ref.shape
    assert torch.equal(fast.to(torch.float64), ref.to(torch.float64)), (
        f"max |diff| = {(fast.double() - ref.double()).abs().max()}")
    assert torch.equal(emulate_forward(layer, x, unit), reference_forward(layer, x, unit))


@pytest.mark.parametrize("config", CONFIGS, ids=[c[0] for c in CONFIGS])
@pytest.mark.parametrize("activation", ["uint8", "int8"])
def test_every_configuration_every_unit(config, activation, backend):
    name, factory, shape = config
    torch.manual_seed(len(name))
    module = factory()
    x = _input(shape, seed=len(name) + 7, relu=activation == "uint8" and "pad" in name)
    layer = make_layer(module, x, activation)
    for unit in UNITS.values():
        _check(layer, x, unit)


@pytest.mark.parametrize("activation", ["uint8", "int8"])
def test_evoapprox_tables(evo_tables, activation, backend):
    torch.manual_seed(3)
    conv = nn.Conv2d(6, 8, 3, stride=1, padding=1)
    x = _input((2, 6, 7, 7), seed=5)
    layer = make_layer(conv, x, activation)
    lin = make_layer(nn.Linear(20, 7), _input((4, 20), seed=6), activation)
    for table in evo_tables.values():
        _check(layer, x, table)
        _check(lin, _input((4, 20), seed=6), table)


def test_structured_units_take_the_plane_path(evo_tables):
    layer = make_layer(nn.Conv2d(3, 4, 3, padding=1), _input((1, 3, 5, 5), 0))
    assert plan_for(layer, None).residual is None
    assert len(plan_for(layer, None).passes) == 1
    for unit in (truncated(8), truncated(4), broken_array(2, 8), evo_tables["v10/mul8u_17QU"]):
        assert plan_for(layer, unit).bit_linear, unit.name
    # low-rank residual: planes too
    assert plan_for(layer, evo_tables["v10/mul8u_2P7"]).residual is None
    assert not plan_for(layer, evo_tables["v10/mul8u_2P7"]).bit_linear
    for unit in (drum(4), random_table(5), evo_tables["v10/mul8u_17KS"]):
        assert plan_for(layer, unit).residual is not None
    int8_layer = make_layer(nn.Conv2d(3, 4, 3, padding=1), _input((1, 3, 5, 5), 0), "int8")
    for unit in (truncated(8, True), evo_tables["v10/mul8s_1KVL"], evo_tables["v10/mul8s_1L2H"]):
        assert plan_for(int8_layer, unit).bit_linear, unit.name


@pytest.mark.parametrize("activation", ["uint8", "int8"])
def test_exact_unit_is_plain_integer_inference(activation, backend):
    torch.manual_seed(11)
    for conv, shape in ((nn.Conv2d(8, 6, 3, stride=2, padding=1), (3, 8, 12, 12)),
                        (nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=3), (2, 6, 9, 9)),
                        (nn.Conv2d(32, 16, 3, padding=1), (2, 32, 6, 6))):
        x = _input(shape, 13)
        layer = make_layer(conv, x, activation)
        index = layer.quantize_input(x)
        expected = integer_conv_reference(layer, index)
        assert torch.equal(accumulate(layer, x, None).to(torch.int64), expected)
        assert torch.equal(reference_accumulate(layer, x, None), expected)
        # an exact table in either layout is the exact unit too
        for signed in (False, True):
            if activation == "int8" and not signed:
                continue  # sign-magnitude of the activation: still exact, checked below
            assert torch.equal(accumulate(layer, x, exact_table(signed)).to(torch.int64),
                               expected)


def test_exact_unsigned_table_with_int8_activations_is_exact():
    torch.manual_seed(1)
    x = _input((2, 4, 6, 6), 2)
    layer = make_layer(nn.Conv2d(4, 3, 3, padding=1), x, "int8")
    expected = integer_conv_reference(layer, layer.quantize_input(x))
    assert torch.equal(accumulate(layer, x, exact_table(False)).to(torch.int64), expected)


def test_padding_is_the_zero_point():
    """A padded layer equals the unpadded layer on the input padded with real zeros."""
    torch.manual_seed(4)
    x = _input((2, 3, 7, 7), 9).relu() + 0.5  # all positive: zero point 0 ... unless the
    x[:, :, 0, 0] = -2.0  # range includes negatives: zero point > 0
    padded = nn.Conv2d(3, 4, 3, padding=2)
    plain = nn.Conv2d(3, 4, 3, padding=0)
    plain.load_state_dict(padded.state_dict())
    a = make_layer(padded, x)
    b = make_layer(plain, x)
    assert a.act.zero_point > 0
    for unit in (None, random_table(30, seed=3), truncated(5)):
        ya = emulate_forward(a, x, unit)
        yb = emulate_forward(b, F.pad(x, (2, 2, 2, 2)), unit)
        assert torch.equal(ya, yb)


def test_wide_sums_split_into_digits_and_float64(monkeypatch, backend):
    """Force tiny exactness limits: the digit splitting and the float64 paths stay exact."""
    torch.manual_seed(8)
    x = _input((2, 16, 6, 6), 4)
    conv = nn.Conv2d(16, 5, 3, padding=1)
    for limit in (2**14, 2**9):
        monkeypatch.setattr(kernels, "EXACT_F32", limit)
        for activation in ("uint8", "int8"):
            layer = make_layer(conv, x, activation)
            for unit in (None, truncated(6), random_table(900, seed=5)):
                _check(layer, x, unit)
            backends = {p.backend for p in plan_for(layer, None).passes}
            assert "float64" in backends or len(plan_for(layer, None).passes) > 1


@pytest.mark.parametrize("groups", [1, 2])
def test_streamed_tables_and_batch_chunks(monkeypatch, groups):
    """Residual tables built per call in small reduction chunks, and small batch chunks."""
    torch.manual_seed(2)
    x = _input((5, 4, 6, 6), 1)
    layer = make_layer(nn.Conv2d(4, 6, 3, padding=1, groups=groups), x)
    unit = random_table(50, seed=9)
    expected = reference_accumulate(layer, x, unit)
    monkeypatch.setattr(kernels, "INDEX_CHUNK", 100)  # < one output row: row blocks
    monkeypatch.setattr(kernels, "TABLE_KEEP", 1000)
    monkeypatch.setattr(kernels, "TABLE_CHUNK", 256 * 6 * 4 * 5)  # 5 entries per chunk
    layer.clear_plans()
    monkeypatch.setattr(kernels, "INDEX_CHUNK", 36 * 6 * 2)  # two images per block
    assert torch.equal(accumulate(layer, x, unit).to(torch.int64), expected)
    monkeypatch.setattr(kernels, "INDEX_CHUNK", 100)  # < one output row: row blocks
    plan = plan_for(layer, unit)
    assert plan.residual.kept is None and plan.residual.chunk == 5
    assert torch.equal(accumulate(layer, x, unit).to(torch.int64), expected)


def test_int32_overflow_is_refused():

    lin = nn.Linear(40_000, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    layer = make_layer(lin, torch.ones(1, 40_000))
    huge = Table(np.full((256, 256), 65535, np.int32), False)
    with pytest.raises(InvalidParameterError, match="int32 accumulator"):
        plan_for(layer, huge)
    plan_for(layer, None)  # exact: 40,000 * 255 * 127 < 2^31


def test_all_evoapprox_tables_both_codings():
    """Every EvoApprox table, uint8 and int8 activations, on one strided padded conv."""
    import json

    from emul_helpers import EVO_DIR

    if not (EVO_DIR / "evo8_luts.npz").is_file():
        pytest.skip("EvoApprox tables not available")
    meta = json.loads((EVO_DIR / "evo8_luts.json").read_text())
    signed_of = {sha: meta["meta"][name]["signed"] for name, sha in meta["names"].items()}
    torch.manual_seed(21)
    x = _input((2, 5, 8, 8), 22)
    conv = nn.Conv2d(5, 4, 3, stride=2, padding=1)
    layers = {act: make_layer(conv, x, act) for act in ("uint8", "int8")}
    with np.load(EVO_DIR / "evo8_luts.npz") as z:
        for key in z.files:
            table = Table(z[key], bool(signed_of[key[4:]]), name=key)
            for layer in layers.values():
                _check(layer, x, table)


@pytest.mark.parametrize("activation", ["uint8", "int8"])
def test_realistic_layer_sizes(activation, backend):
    """A 32->64 3x3 conv on 14x14 ReLU maps (mnist-cnn's conv2) and a 576->10 linear."""
    torch.manual_seed(5)
    conv = nn.Conv2d(32, 64, 3, padding=1)
    x = _input((2, 32, 14, 14), 6, relu=True)
    layer = make_layer(conv, x, activation)
    lin = nn.Linear(576, 10)
    xl = _input((3, 576), 7, relu=True)
    lin_layer = make_layer(lin, xl, activation)
    for unit in (None, truncated(8, activation == "int8"), random_table(200, seed=4),
                 drum(3, True)):
        _check(layer, x, unit)
        _check(lin_layer, xl, unit)


def test_onednn_pass_that_fails_its_check_falls_back(monkeypatch):
    if not kernels.onednn_exact():
        pytest.skip("oneDNN int8 convolution not used here")
    monkeypatch.setattr(kernels.PlanePass, "verify", lambda self: False)
    torch.manual_seed(6)
    x = _input((2, 4, 6, 6), 3)
    layer = make_layer(nn.Conv2d(4, 5, 3, padding=1), x)
    plan = plan_for(layer, truncated(7))
    assert {p.backend for p in plan.passes} == {"float32"}
    _check(layer, x, truncated(7))


def test_float64_backend(monkeypatch):
    """The backend used off-CPU (float64 convolutions), here forced on the CPU."""
    monkeypatch.setattr(kernels, "onednn_exact", lambda: False)
    monkeypatch.setattr(kernels, "cpu_float32_exact", lambda: False)
    torch.manual_seed(12)
    for conv, shape in ((nn.Conv2d(6, 4, 3, stride=2, padding=1, groups=2), (2, 6, 9, 9)),
                        (nn.Linear(30, 7), (3, 30))):
        x = _input(shape, 4)
        for activation in ("uint8", "int8"):
            layer = make_layer(conv, x, activation)
            for unit in (None, truncated(6, activation == "int8"), random_table(33, seed=8)):
                _check(layer, x, unit)
                assert {p.backend for p in plan_for(layer, unit).passes} == {"float64"}


@pytest.mark.parametrize("limit, digits, dtype", [(2**14, 2, torch.float32),
                                                  (2**9, 1, torch.float64)])
def test_wide_residual_tables(monkeypatch, limit, digits, dtype):
    """Residual sums beyond 2^24 (here: a lowered limit): two float32 digits, else float64."""
    monkeypatch.setattr(kernels, "EXACT_F32", limit)
    torch.manual_seed(9)
    x = _input((2, 16, 6, 6), 4)
    layer = make_layer(nn.Conv2d(16, 5, 3, padding=1), x)
    unit = random_table(900, seed=5)
    res = plan_for(layer, unit).residual
    assert res.digits.shape[0] == digits and res.digits.dtype == dtype
    _check(layer, x, unit)
