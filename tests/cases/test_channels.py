"""Channels of weight (and bias) sites are output channels for every conv kind.

`Site(layer, "weight", channels=(k,))` perturbs the filters that produce output channel k:
exactly output channel k changes, for Conv2d, grouped Conv2d, ConvTranspose2d (whose weight
is stored in x out) with groups 1 and 2, depthwise Conv2d and Linear; k out of range is
refused. Checked against the output channels that actually change.
"""

from __future__ import annotations

import pytest
import torch
from casekit import case, load_data, weights
from torch import nn

import approxmap as am

LAYERS = {
    "conv": lambda: nn.Conv2d(4, 6, 3, padding=1),
    "grouped-conv": lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2),
    "depthwise-conv": lambda: nn.Conv2d(4, 4, 3, padding=1, groups=4),
    "conv-transpose": lambda: nn.ConvTranspose2d(4, 6, 2, stride=2),
    "grouped-conv-transpose": lambda: nn.ConvTranspose2d(4, 6, 3, padding=1, groups=2),
    "conv-transpose-g2-rect": lambda: nn.ConvTranspose2d(6, 4, (2, 3), stride=(2, 1), groups=2),
    "linear": lambda: nn.Linear(4, 6),
}


class Holder(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)


def _input(layer: nn.Module) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if isinstance(layer, nn.Linear):
        return torch.randn(5, layer.in_features, generator=gen)
    return torch.randn(2, layer.in_channels, 5, 5, generator=gen)


def _changed(model: nn.Module, site: am.Site, x: torch.Tensor) -> list[int]:
    with torch.no_grad():
        clean = model(x)
        with am.Injector(model, [(site, am.Gaussian(std=1.0, mean=0.5))], seed=0) as run:
            noisy = run(x)
    return [c for c in range(clean.shape[1]) if not torch.equal(noisy[:, c], clean[:, c])]


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("target", ["weight", "bias"])
def test_a_site_channel_changes_exactly_that_output_channel(kind, target):
    torch.manual_seed(1)
    model = Holder(LAYERS[kind]()).eval()
    x = _input(model.layer)
    outputs = model(x).shape[1]
    for channels in [(k,) for k in range(outputs)] + [(0, outputs - 1)]:
        assert _changed(model, am.Site("layer", target, channels=channels), x) == list(channels)
    assert _changed(model, am.Site("layer", target), x) == list(range(outputs))


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("target", ["weight", "bias", "output"])
def test_a_channel_out_of_range_is_refused(kind, target):
    model = Holder(LAYERS[kind]()).eval()
    outputs = model(_input(model.layer)).shape[1]
    with pytest.raises(am.InvalidParameterError, match=f"Channel {outputs} is out of range"):
        am.Site("layer", target, channels=(1, outputs)).check(model)
    with pytest.raises(am.InvalidParameterError, match="out of range"):
        am.Injector(model, [(am.Site("layer", target, channels=(outputs,)), am.Gaussian(std=1))],
                    seed=0)


def test_calibration_stats_of_a_transpose_weight_channel_are_its_output_filters():
    layer = nn.ConvTranspose2d(4, 6, 3, groups=2)
    site = am.Site("layer", "weight", channels=(4,))
    observed = site.kind.static_tensor(site, layer)  # what the clean pass takes stats of
    filters = layer.weight.detach()[2:4, 1]  # group 1 (inputs 2-3) makes outputs 3-5: 4 is 1
    assert torch.equal(observed, filters.unsqueeze(0))


def test_case05_through_a_campaign_changes_only_the_chosen_output_channel():
    """The local engine (graph split, parameter overrides) on the encoder-decoder case."""
    model = case("case05").build()
    model.load_state_dict(weights("case05.pt"))
    model.eval()
    data = load_data(images=8)
    seen: list[torch.Tensor] = []
    hook = model.up.register_forward_hook(lambda m, a, out: seen.append(out.detach().clone()))
    try:
        for k in (0, 5):
            seen.clear()
            scenario = am.Scenario.single(am.Site("up", "weight", channels=(k,)),
                                          am.Gaussian(std=1.0))
            am.Campaign(model, data, [scenario], am.Run(trials=1, batch_size=8)).run()
            clean, noisy = seen[0], seen[-1]
            assert [c for c in range(6) if not torch.equal(clean[:, c], noisy[:, c])] == [k]
    finally:
        hook.remove()
    with pytest.raises(am.InvalidParameterError, match="ConvTranspose2d 'up' has 6 output"):
        am.Campaign(model, data, [am.Scenario.single(am.Site("up", "weight", channels=(7,)),
                                                     am.Gaussian(std=1.0))])


def test_cli_profile_channels_of_a_transpose_conv(cli, tmp_path):
    from casekit import ONE, RUN, npz, spec

    common = ("--model", spec("case05"), "--data", npz(), "--images", "16", *RUN, *ONE,
              "--site", "weight", "--sigma", "0,1")
    line = cli.refused("profile", *common, "--layers", "up", "--channels", "up=7",
                       "--out", tmp_path / "bad")
    assert "Channel 7 is out of range" in line and "6 output channels" in line
    assert not (tmp_path / "bad").exists()
    cli.ok("profile", *common, "--layers", "up", "--channels", "up=5", "--out", tmp_path / "ok")
