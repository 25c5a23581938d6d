"""A model left in train mode (BatchNorm, Dropout), and one wrapped in nn.DataParallel.

Nothing approxmap does changes the model's state: every analysis evaluates in eval mode and
gives every module its own training flag back; BatchNorm running statistics never see the
injected activations; σ = 0 reproduces the eval-mode clean model. A DataParallel model works
with its `module.` names, through the graph split.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from casekit import ONE, RUN, case, load_data, npz, spec, top1_accuracy
from torch import nn

import approxmap as am
from approxmap.analysis.classify import classify_by_budget
from approxmap.core.layers import layer_table


class WithDropout(nn.Module):
    """case12's network with Dropout, some modules left in train mode and some not."""

    def __init__(self) -> None:
        super().__init__()
        self.body = case("case12p").trained()
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.body(x))


def _train_mode():
    return case("case12p").trained().train()


def _mixed():
    model = WithDropout().train()
    model.body.bn2.eval()  # a flag the user set on purpose
    return model


MODELS = {"train": _train_mode, "mixed": _mixed,
          "dp-train": lambda: case("case12p").trained_dp().train()}


def _state(model: nn.Module):
    return (copy.deepcopy(model.state_dict()), [(n, m.training) for n, m in model.named_modules()])


def _assert_unchanged(model: nn.Module, before) -> None:
    state, flags = before
    after = model.state_dict()
    assert [k for k, v in after.items() if not torch.equal(v, state[k])] == []
    assert [(n, m.training) for n, m in model.named_modules()] == flags


def _reference(model: nn.Module) -> nn.Module:
    ref = copy.deepcopy(model)
    return ref.eval()


@pytest.fixture(scope="module")
def data():
    return load_data(images=24)


@pytest.mark.parametrize("name", list(MODELS))
def test_injector_leaves_the_model_as_it_was(name, data):
    model = MODELS[name]()
    before, clean = _state(model), _reference(model)
    first = "module.conv1" if name.startswith("dp") else (
        "body.conv1" if name == "mixed" else "conv1")
    x = data.x[:16]
    with torch.no_grad():
        expected = clean(x)
        with am.Injector(model, [(am.Site(first), am.Gaussian(std=0.0))], seed=0) as run:
            assert torch.equal(run(x), expected)
            assert torch.equal(run(x), expected)  # no dropout, no batch statistics
        with am.Injector(model, [(am.Site(first), am.Gaussian(std=0.2)),
                                 (am.Site(first, "weight"), am.Gaussian(std=0.2))],
                         seed=0) as run:
            assert not torch.equal(run(x), expected)
    _assert_unchanged(model, before)


@pytest.mark.parametrize("name", list(MODELS))
def test_analyses_leave_the_model_as_it_was(name, data):
    model = MODELS[name]()
    before = _state(model)
    clean = top1_accuracy(_reference(model), data)
    profile = am.profile_layers(model, data, am.ProfileSpec(sweep=(0.0, 0.5)), am.Run(trials=2))
    assert profile.clean_accuracy == clean
    assert all(layer.points[0].accuracy == clean for layer in profile.layers)
    campaign = am.Campaign(model, data, [am.Scenario.single(am.Site(profile.layers[0].name,
                                                                    "input"),
                                                            am.Gaussian(std=1.0))])
    campaign.run()
    assert campaign.clean_accuracy() == clean
    sig = am.compute_significance(model, data, ["l1_folded", "mean", "apoz", "taylor",
                                                "resilience"])
    classify_by_budget(model, data, sig, "l1_folded", budget_pp=5.0, run=am.Run(trials=1))
    am.sensitivity_analysis(model, data, am.SensitivitySpec(ratios=(0.5,)))
    result = am.prune_analysis(model, data, am.PruneSpec(ratio=0.5, repeats=2))
    assert result.before["accuracy"] == clean
    layer_table(model, data.sample(1))
    am.measure_latency(model, data.x[:1], repeats=2, warmup=1)
    _assert_unchanged(model, before)


def test_a_data_parallel_model_uses_module_names_and_the_graph_split(data):
    plain, wrapped = case("case12p").trained(), case("case12p").trained_dp()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to hooks
        a = am.profile_layers(wrapped, data, am.ProfileSpec(sweep=(0.0, 1.0)), am.Run(trials=2))
    b = am.profile_layers(plain, data, am.ProfileSpec(sweep=(0.0, 1.0)), am.Run(trials=2))
    assert [layer.name for layer in a.layers] == ["module.conv1", "module.conv2", "module.fc"]
    assert [(la.type, la.macs) for la in a.layers] == [(lb.type, lb.macs) for lb in b.layers]
    assert a.clean_accuracy == b.clean_accuracy
    hooks = am.profile_layers(wrapped, data, am.ProfileSpec(sweep=(0.0, 1.0)), am.Run(
        trials=2, engine=am.create_engine("local", prefix_cache=False)))
    assert [[p.accuracy for p in la.points] for la in a.layers] == [
        [p.accuracy for p in lh.points] for lh in hooks.layers]
    sig = am.compute_significance(wrapped, data, ["l1", "apoz"])
    assert sig.layers == ["module.conv1", "module.conv2"]
    assert sig.details["read_points"] == {"module.conv1": "module.bn1",
                                          "module.conv2": "module.bn2"}
    result = am.prune_analysis(wrapped, data, am.PruneSpec(ratio=0.5, repeats=2))
    assert result.removed_filters == {"module.conv1": 4, "module.conv2": 8}
    assert result.after["accuracy"] == result.after["masked_accuracy"]


def test_cli_a_data_parallel_model(cli, tmp_path):
    out, err = cli.ok("profile", "--model", spec("case12p", "trained_dp"), "--data", npz(),
                      "--images", "16", *RUN, *ONE, "--sigma", "0,1", "--out", tmp_path / "p")
    assert "module.conv1" in out and "warning" not in err
    out, _ = cli.ok("layers", "--model", spec("case12p", "trained_dp"), "--data", npz())
    assert "module.bn1" in out
