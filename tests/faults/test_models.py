"""The registered bitflip / stuckbit error models: parameters, modes, sites, permanence."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import approxmap as am
from approxmap.core.exceptions import InvalidParameterError
from approxmap.faults import BitFlip, StuckBit
from approxmap.faults.bits import count_changed_bits, encode


def changed_per_sample(before: torch.Tensor, after: torch.Tensor) -> list[int]:
    a, b = encode(before, "fp32"), encode(after, "fp32")
    return (a != b).reshape(len(a), -1).sum(1).tolist()


def test_registered_and_built_by_name_with_canonical_parameters():
    assert {"bitflip", "stuckbit"} <= set(am.list_error_models())
    error = am.create_error_model("bitflip", format="bf16", bits="0:2,sign", rate=0.001)
    assert error.positions == (0, 1, 2, 15) and error.bits == "0:2,15" and error.mode == "rate"
    assert am.create_error_model("bitflip", bit=30.0).bits == "30"  # a swept float
    assert BitFlip().mode == "single" and BitFlip(count=3).mode == "count"
    assert am.create_error_model("stuckbit", value="0", rate="0.5").value == 0  # --param text
    again = am.Scenario.from_dict(am.Scenario.single(am.Site("fc"), error).to_dict())
    assert again.injections[0][1] == error


@pytest.mark.parametrize(("params", "message"), [
    ({"format": "fp64"}, "Unknown number format 'fp64'"),
    ({"format": "int8", "bit": 8}, "out of range for int8"),
    ({"format": "fp16", "bits": "0:16"}, "out of range for fp16"),
    ({"bit": 32}, "out of range for fp32"),
    ({"bit": 1.5}, "must be an integer"),
    ({"rate": 1.5}, r"must be a number in \[0, 1\]"),
    ({"rate": -0.1}, r"must be a number in \[0, 1\]"),
    ({"rate": 0.1, "count": 2}, "not both"),
    ({"count": -1}, "must be an integer >= 0"),
    ({"bit": 3, "bits": "0:7"}, "not both"),
    ({"per": "batch"}, "'per' parameter"),
    ({"granularity": "row"}, "'granularity' parameter"),
    ({"qscale": -1.0}, "'qscale' parameter"),
])
def test_bad_parameters_are_refused_with_one_message(params, message):
    with pytest.raises(InvalidParameterError, match=message):
        am.create_error_model("bitflip", **params)


def test_bad_stuck_parameters():
    with pytest.raises(InvalidParameterError, match="0 or 1"):
        StuckBit(value=2)
    with pytest.raises(InvalidParameterError, match=r"\[0, 1\]"):
        StuckBit(rate=2.0)


def test_single_fault_per_inference_at_activations_and_per_tensor_at_weights():
    g = torch.Generator().manual_seed(0)
    act = torch.rand(32, 8, 5, 5)
    act_stats = am.SiteStats.of(act, channel_dim=1)
    out = BitFlip().resolve(act_stats).apply(act, g)
    assert changed_per_sample(act, out) == [1] * 32
    weight = torch.rand(16, 8, 3, 3)
    resolved = BitFlip().resolve(am.SiteStats.of(weight, channel_dim=0))
    assert resolved.per == "tensor"
    assert int(count_changed_bits(weight, resolved.apply(weight, g), "fp32")) == 1
    assert BitFlip(count=0).is_identity() and BitFlip(rate=0.0).is_identity()
    assert BitFlip(count=0).apply(act, g) is act


def test_int8_takes_its_scale_from_the_site_statistics():
    x = torch.tensor([[[2.0, -1.0]], [[0.5, 1.0]]]).permute(0, 2, 1)  # (2, 2 channels, 1)
    stats = am.SiteStats.of(x, channel_dim=1)
    error = BitFlip(format="int8", bits="sign", count=2)
    assert error.relative
    with pytest.raises(InvalidParameterError, match="resolve"):
        error.apply(x, torch.Generator().manual_seed(0))
    per_tensor = error.resolve(stats).apply(x, torch.Generator().manual_seed(0))
    s = 2.0 / 127  # absmax / 127
    codes = torch.round(x / s)
    flipped = torch.where(codes >= 0, codes - 128, codes + 128) * s
    assert torch.allclose(per_tensor, flipped)  # both elements of each sample flipped
    per_channel = BitFlip(format="int8", bits="sign", count=2, granularity="channel")
    out = per_channel.resolve(stats).apply(x, torch.Generator().manual_seed(0))
    scales = stats.channel_absmax.float().reshape(1, 2, 1) / 127
    codes = torch.round(x / scales)
    assert torch.allclose(out, torch.where(codes >= 0, codes - 128, codes + 128) * scales)
    assert not BitFlip(format="int8", qscale=0.1).relative


def test_stuck_bits_hit_the_same_elements_in_every_batch_of_a_trial():
    x = torch.rand(10, 4, 6, 6)
    error = StuckBit(bits="sign", value=1, rate=0.05).resolve(am.SiteStats.of(x))
    g = torch.Generator().manual_seed(42)
    first, second = error.apply(x, g), error.apply(x[:3], g)
    stuck = first < 0
    assert stuck.any() and torch.equal(stuck[:3], second < 0)
    assert all(torch.equal(stuck[0], stuck[i]) for i in range(10))  # same in every sample
    other = error.apply(x, torch.Generator().manual_seed(43)) < 0
    assert not torch.equal(stuck, other)  # another trial, other elements
    many = StuckBit(bits="sign", rate=0.3).resolve(am.SiteStats.of(x)).apply(
        torch.rand(1, 100_000), torch.Generator().manual_seed(0))
    assert abs(float((many < 0).float().mean()) - 0.3) < 0.01


def test_stuck_at_zero_and_stuck_weights():
    w = -torch.rand(16, 9) - 0.5
    error = StuckBit(bits="sign", value=0, rate=0.25).resolve(am.SiteStats.of(w, channel_dim=0))
    out = error.apply(w, torch.Generator().manual_seed(0))
    cleared = out > 0
    assert error.per == "tensor" and 0 < int(cleared.sum()) < w.numel()
    assert torch.equal(out[cleared], -w[cleared])


def test_default_profile_sweeps_every_bit_of_the_format_and_accepts_the_bits_spelling():
    assert am.ProfileSpec(error="bitflip").sweep == tuple(float(b) for b in range(32))
    spec = am.ProfileSpec(error="bitflip", params={"format": "int8"})
    assert spec.sweep == tuple(float(b) for b in range(8)) and spec.axis == "bit"
    spelled = am.ProfileSpec(error="bitflip", axis="bits", sweep=(0, 5))
    assert spelled.axis == "bit" and spelled.categorical
    assert spelled.error_model(5.0).positions == (5,)
    rate = am.ProfileSpec(error="bitflip", axis="rate", sweep=(0, 1e-6))
    assert not rate.categorical
    with pytest.raises(InvalidParameterError, match="out of range for fp16"):
        am.ProfileSpec(error="bitflip", params={"format": "fp16"}, axis="bit", sweep=(15, 16))


def test_importing_approxmap_registers_the_fault_models():
    code = ("import approxmap as am; m = am.create_error_model('bitflip', bit=3); "
            "print(m.kind, 'stuckbit' in am.list_error_models())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split() == ["bitflip", "True"], done.stderr[-2000:]
