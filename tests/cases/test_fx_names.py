"""Module names that collide with torch.fx internals (a submodule named `meta`, `graph`,
`code`, ...), constants created inside forward(), and models fx cannot trace.

The graph split runs on the model itself, so names are just names: profile works, without
a fallback, and every trial equals the hook engine's; a failure of the split falls back to
hooks with one warning; the model is left as it was.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from casekit import FIXTURES, ONE, RUN, case, load_data, npz, spec, weights
from torch import nn

import approxmap as am

NAMES = ("meta", "graph", "code", "_code", "_graph", "_tracer_cls", "_forward",
         "forward_features", "call_module", "root", "training_step")


def _named(name: str) -> nn.Module:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.add_module(name, nn.Conv2d(1, 8, 3, padding=1))
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
            self.fc = nn.Linear(16, 5)

        def forward(self, x):
            x = torch.relu(getattr(self, name)(x)) * torch.tensor(2.0)  # a traced constant
            return self.fc(torch.relu(self.conv2(x)).mean((2, 3)))

    torch.manual_seed(0)
    return Net().eval()


def _case14m():
    model = case("case14m").build()
    model.load_state_dict(weights("case14m.pt"))
    return model.eval()


@pytest.fixture(scope="module")
def data():
    return load_data(images=16)


def _records(model, data, sites, prefix_cache: bool):
    scenarios = [am.Scenario.single(site, am.Gaussian(std=1.0)) for site in sites]
    run = am.Run(trials=2, batch_size=8,
                 engine=am.create_engine("local", prefix_cache=prefix_cache))
    campaign = am.Campaign(model, data, scenarios, run)
    campaign.run()
    return {key: record.counts for key, record in campaign.records().items()}


@pytest.mark.parametrize("name", ("case14m", *NAMES))
def test_the_graph_split_works_and_equals_the_hook_engine(name, data):
    model = _case14m() if name == "case14m" else _named(name)
    first = "meta" if name == "case14m" else name
    attributes = set(vars(model))
    sites = [am.Site(first), am.Site(first, "weight"), am.Site("conv2", "input"),
             am.Site("fc", channels=(1,))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        split = _records(model, data, sites, prefix_cache=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hooks = _records(model, data, sites, prefix_cache=False)
    assert split == hooks
    assert len(split) == 2 * len(sites)
    assert set(vars(model)) == attributes  # no traced constant left on the model


def test_a_model_fx_cannot_split_falls_back_to_hooks_with_one_warning(data):
    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.meta = nn.Conv2d(1, 8, 3, padding=1)
            self.fc = nn.Linear(8, 5)

        def forward(self, x):
            x = torch.relu(self.meta(x)).mean((2, 3))
            return self.fc(x) if float(x.sum()) > 0 else -self.fc(x)

    torch.manual_seed(0)
    model = DataDependent().eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = am.profile_layers(model, data, am.ProfileSpec(sweep=(0.0, 0.5, 1.0)),
                                   am.Run(trials=2))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "torch.fx cannot split the model" in messages[0]
    assert "falling back to a full forward per trial" in messages[0]
    hooks = am.profile_layers(model, data, am.ProfileSpec(sweep=(0.0, 0.5, 1.0)), am.Run(
        trials=2, engine=am.create_engine("local", prefix_cache=False)))
    assert [[p.accuracy for p in layer.points] for layer in result.layers] == [
        [p.accuracy for p in layer.points] for layer in hooks.layers]


def test_read_points_and_pruning_work_with_such_names(data):
    model = _case14m()
    result = am.prune_analysis(model, data, am.PruneSpec(ratio=0.5, repeats=2))
    assert result.removed_filters == {"meta": 4, "conv2": 8}
    assert result.after["accuracy"] == result.after["masked_accuracy"]


def test_cli_profile_of_case14m(cli, tmp_path):
    _, err = cli.ok("profile", "--model", spec("case14m"), "--weights", FIXTURES / "case14m.pt",
                    "--data", npz(), "--images", "16", *RUN, *ONE, "--sigma", "0,1",
                    "--out", tmp_path / "p")
    assert "warning" not in err
