"""Eager-mode int8 models (static: QuantStub + quantized Conv2d/Linear; dynamic: int8 Linear).

Errors enter the dequantized values at quantized sites and are requantized with the site's
own scale and zero point; weight sites of packed int8 weights are refused in one line naming
the module class; `layers` counts quantized MACs under the type name `significance` uses.
"""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
from casekit import ONE, RUN, case, load_data, npz, spec, top1_accuracy
from torch import nn
from torch.ao.quantization import DeQuantStub, QuantStub, convert, get_default_qconfig, prepare

import approxmap as am
from approxmap.campaign.campaign import weights_digest
from approxmap.core.layers import layer_table

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch's quantization notices


class QuantizedNet(nn.Module):
    """A second static int8 instance: case04's Net (functional ReLU, a mean) between stubs."""

    def __init__(self) -> None:
        super().__init__()
        self.quant, self.dequant = QuantStub(), DeQuantStub()
        self.net = case("case04").trained()

    def forward(self, x):
        return self.dequant(self.net(self.quant(x)))


def _static_net():
    model = QuantizedNet().eval()
    model.qconfig = get_default_qconfig("x86")
    prepare(model, inplace=True)
    with torch.no_grad():
        model(load_data().x[:32])
    return convert(model, inplace=True)


MODELS = {
    "static": lambda: case("case03").build(),
    "dynamic": lambda: case("case03").build_dynamic(),
    "static-net": _static_net,
}
# layer -> (type as shown everywhere, MACs per sample)
EXPECTED = {
    "static": {"conv": ("QuantizedConv2d", 8 * 16 * 16 * 9), "fc": ("QuantizedLinear", 32 * 5)},
    "dynamic": {"conv": ("Conv2d", 8 * 16 * 16 * 9), "fc": ("DynamicQuantizedLinear", 32 * 5)},
    "static-net": {"net.conv1": ("QuantizedConv2d", 8 * 16 * 16 * 9),
                   "net.conv2": ("QuantizedConv2d", 16 * 8 * 8 * 8 * 9),
                   "net.fc": ("QuantizedLinear", 16 * 5)},
}


@pytest.fixture(scope="module")
def data():
    return load_data(images=24)


@pytest.fixture(scope="module", params=list(MODELS))
def kind(request):
    return request.param, MODELS[request.param]()


def test_layers_count_quantized_macs_under_their_type_names(kind, data):
    name, model = kind
    rows = {r.name: r for r in layer_table(model, data.sample(1))}
    for layer, (type_, macs) in EXPECTED[name].items():
        assert (rows[layer].type, rows[layer].macs) == (type_, macs)
        assert rows[layer].params > 0  # packed int8 weights are counted
    assert not any(n.endswith("_packed_params") for n in rows)  # storage, not a layer
    assert all(r.runs for r in rows.values())


@pytest.mark.parametrize("target", ["output", "input"])
def test_profile_runs_and_sigma_zero_is_the_clean_accuracy(kind, data, target):
    name, model = kind
    result = am.profile_layers(model, data, am.ProfileSpec(site=target, sweep=(0.0, 2.0)),
                               am.Run(trials=1))
    assert result.clean_accuracy == pytest.approx(top1_accuracy(model, data), abs=1e-12)
    assert {layer.name: layer.type for layer in result.layers} == {
        k: t for k, (t, _) in EXPECTED[name].items()}
    for layer in result.layers:
        assert layer.points[0].magnitude == 0.0
        assert layer.points[0].accuracy == result.clean_accuracy
    assert any(layer.points[1].agreement < 1 for layer in result.layers)  # errors do enter


def test_errors_enter_dequantized_values_and_are_requantized_with_the_site_scale(data):
    model = case("case03").build()
    seen = {}
    hook = model.relu.register_forward_pre_hook(lambda m, args: seen.__setitem__("v", args[0]))
    x = data.x[:8]
    try:
        with torch.no_grad():
            clean = model(x)
            clean_conv = seen["v"]
            with am.Injector(model, [(am.Site("conv"), am.Gaussian(std=0.0))], seed=0) as run:
                assert torch.equal(run(x), clean)  # dequantize + requantize is exact
            with am.Injector(model, [(am.Site("conv", channels=(2,)), am.Gaussian(std=0.5))],
                             seed=0) as run:
                noisy = run(x)
    finally:
        hook.remove()
    value = seen["v"]
    assert value.is_quantized and value.dtype == clean_conv.dtype
    assert (value.q_scale(), value.q_zero_point()) == (model.conv.scale, model.conv.zero_point)
    changed = [c for c in range(8) if not torch.equal(value.int_repr()[:, c],
                                                       clean_conv.int_repr()[:, c])]
    assert changed == [2]
    assert not torch.equal(noisy, clean)


@pytest.mark.parametrize("name,layer,cls", [("static", "conv", "quantized.modules.conv.Conv2d"),
                                            ("static", "fc", "quantized.modules.linear.Linear"),
                                            ("dynamic", "fc", "dynamic.modules.linear.Linear")])
@pytest.mark.parametrize("target", ["weight", "bias"])
def test_parameter_sites_of_packed_weights_are_refused_naming_the_class(name, layer, cls, target):
    model = MODELS[name]()
    with pytest.raises(am.InvalidParameterError, match=rf"{layer}.*{cls}.*packed int8"):
        am.Site(layer, target).check(model)


def test_significance_names_the_type_layers_shows(data):
    static, dynamic = MODELS["static"](), MODELS["dynamic"]()
    with pytest.raises(am.InvalidParameterError,
                       match="no float Conv2d; 'conv' is a QuantizedConv2d"):
        am.compute_significance(static, data, ["l1"])
    with pytest.raises(am.InvalidParameterError, match="'fc' is a QuantizedLinear"):
        am.compute_significance(static, data, ["l1"], layers=["fc"])
    with pytest.raises(am.InvalidParameterError, match="'fc' is a DynamicQuantizedLinear"):
        am.compute_significance(dynamic, data, ["l1"], layers=["fc"])
    sig = am.compute_significance(dynamic, data, ["l1", "apoz"])  # its float conv is scored
    assert sig.layers == ["conv"] and len(sig.scores["apoz"]["conv"]) == 8


def test_weights_digest_sees_every_packed_weight():
    big = torch.ao.quantization.quantize_dynamic(nn.Sequential(nn.Linear(64, 64)), {nn.Linear},
                                                 dtype=torch.qint8)
    other = copy.deepcopy(big)
    assert weights_digest(big) == weights_digest(other)
    weight, bias = big[0].weight(), big[0].bias()
    changed = weight.dequantize().clone()
    changed[32, 32] += 8 * weight.q_scale()  # in the middle: the repr elides it
    other[0].set_weight_bias(torch.quantize_per_tensor(
        changed, weight.q_scale(), weight.q_zero_point(), torch.qint8), bias)
    assert weights_digest(big) != weights_digest(other)
    assert weights_digest(MODELS["static"]()) == weights_digest(MODELS["static"]())


def test_cli_profile_layers_and_refusals(cli, tmp_path):
    static = spec("case03")
    data = ("--data", npz(), "--images", "16")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli.ok("profile", "--model", static, *data, *RUN, *ONE, "--sigma", "0,1",
                "--out", tmp_path / "p")
        profile = json.loads((tmp_path / "p" / "profile.json").read_text())
        assert {layer["name"]: layer["type"] for layer in profile["layers"]} == {
            "conv": "QuantizedConv2d", "fc": "QuantizedLinear"}
        assert all(layer["points"][0]["accuracy"] == profile["clean_accuracy"]
                   for layer in profile["layers"])
        out, _ = cli.ok("layers", "--model", static, "--data", npz())
        assert "QuantizedConv2d" in out and "18,432" in out and "total: 18,592 MACs" in out
        line = cli.refused("profile", "--model", static, *data, *RUN, *ONE, "--site", "weight",
                           "--out", tmp_path / "w")
        assert "torch.ao.nn.quantized.modules.conv.Conv2d" in line and "packed int8" in line
        for command in (["significance"], ["sensitivity", "--ratios", "0.5"],
                        ["prune", "--ratio", "0.5"]):
            line = cli.refused(*command, "--model", static, *data, "--quiet",
                               "--out", tmp_path / command[0])
            assert "'conv' is a QuantizedConv2d" in line
            assert not (tmp_path / command[0]).exists()
        cli.ok("profile", "--model", spec("case03", "build_dynamic"), *data, *RUN, *ONE, "--site",
               "input", "--sigma", "0,1", "--out", tmp_path / "d")
