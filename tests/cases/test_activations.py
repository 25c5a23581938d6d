"""Functional activations (F.relu, torch.sigmoid, x.relu(), torch.tanh, F.silu, ...) versus
their module twins.

Masking a filter (sensitivity, the resilience criterion, budget classes) equals removing it
whatever the activation is written as; APoZ and mean |a| are read after the activation;
where an op approxmap does not know reads the channel, it says so (a warning, and a note in
the result) and prune refuses a masked result that differs from removal, naming the op.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from casekit import FIXTURES, RUN, case, load_data, npz, spec, weights
from torch import nn

import approxmap as am
from approxmap.pruning.masking import mask_injections
from approxmap.pruning.physical import prune_model
from approxmap.pruning.plan import plan_by_ratio, unit_scores
from approxmap.pruning.units import pruning_units, read_points

# name -> (the activation, whether approxmap knows it keeps a zeroed channel zero)
ACTIVATIONS = {
    "F.relu": (F.relu, True),
    "x.relu()": (lambda x: x.relu(), True),
    "torch.relu": (torch.relu, True),
    "torch.tanh": (torch.tanh, True),
    "F.silu": (F.silu, True),
    "F.gelu": (F.gelu, True),
    "F.relu6": (F.relu6, True),
    "F.leaky_relu": (F.leaky_relu, True),
    "torch.sigmoid": (torch.sigmoid, True),
    "x.sigmoid()": (lambda x: x.sigmoid(), True),
    "F.softplus": (F.softplus, False),
    "torch.exp": (torch.exp, False),
}


class Functional(nn.Module):
    """case15's shape with any activation written as a function (BatchNorm in between)."""

    def __init__(self, act) -> None:
        super().__init__()
        self.act = act
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, stride=2)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 8 * 8, 5)

    def forward(self, x):
        x = F.max_pool2d(self.act(self.bn1(self.conv1(x))), 1)
        x = self.act(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


class ActivationThenNorm(nn.Module):
    """conv -> ReLU -> BatchNorm: the BatchNorm turns a zeroed channel into its shift."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, stride=2)
        self.fc = nn.Linear(8 * 8 * 8, 5)

    def forward(self, x):
        x = self.bn1(self.relu(self.conv1(x)))
        return self.fc(torch.flatten(torch.relu(self.conv2(x)), 1))


def _randomized(model: nn.Module) -> nn.Module:
    """Weights and BatchNorm statistics with non-trivial shifts (act(0) != 0 would show)."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.4)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def _twins():
    functional, modules = case("case15").build(), case("case15m").build()
    functional.load_state_dict(weights("case15.pt"))
    modules.load_state_dict(weights("case15.pt"))
    return functional.eval(), modules.eval()


@pytest.fixture(scope="module")
def hard():
    return load_data("case15_hard.npz")


def _gap(model: nn.Module, x: torch.Tensor, ratio: float) -> float:
    """Max |logit difference| between masking and removing `ratio` of every unit's filters."""
    units = pruning_units(model, x[:1])
    sig = am.compute_significance(model, None, ["l1"])
    plan = plan_by_ratio(units, unit_scores(units, {k: torch.as_tensor(v) for k, v in
                                                    sig.scores["l1"].items()}), ratio)
    assert plan.removed
    pruned = prune_model(model, plan, x[:1], units)  # a copy made outside the Injector's hooks
    with torch.no_grad(), am.Injector(model, mask_injections(units, plan, read_points(model)),
                                      seed=0) as masked:
        return float((masked(x) - pruned(x)).abs().max())


@pytest.mark.parametrize("name", [n for n, (_, known) in ACTIVATIONS.items() if known])
def test_masking_equals_removal_for_every_known_activation(name, hard):
    model = _randomized(Functional(ACTIVATIONS[name][0]))
    points = read_points(model)
    assert points["conv1"].module == "bn1" and points["conv1"].unknown is None
    for ratio in (0.25, 0.5):
        assert _gap(model, hard.x[:16], ratio) < 1e-5


def test_case15_functional_and_module_twins_agree_and_match_removal(hard):
    functional, modules = _twins()
    spec_ = am.SensitivitySpec(ratios=(0.25, 0.5), orders=("smallest", "largest"))
    a = am.sensitivity_analysis(functional, hard, spec_)
    b = am.sensitivity_analysis(modules, hard, spec_)
    assert [(r.layer, r.order, r.ratio, r.accuracy) for r in a.rows] == [
        (r.layer, r.order, r.ratio, r.accuracy) for r in b.rows]
    assert a.uncertain == {} and b.uncertain == {}
    for model in (functional, modules):
        for ratio in (0.25, 0.5):
            assert _gap(model, hard.x[:32], ratio) < 1e-5
        result = am.prune_analysis(model, hard, am.PruneSpec(ratio=0.5, repeats=2))
        assert result.after["accuracy"] == result.after["masked_accuracy"]


def test_apoz_and_mean_are_read_after_the_activation(hard):
    functional, modules = _twins()
    a = am.compute_significance(functional, hard, ["apoz", "mean"])
    b = am.compute_significance(modules, hard, ["apoz", "mean"])
    for criterion in ("apoz", "mean"):
        for layer in ("conv1", "conv2"):
            np.testing.assert_allclose(a.scores[criterion][layer], b.scores[criterion][layer],
                                       rtol=1e-12)
    assert (a.scores["apoz"]["conv1"] > 0).all()  # after F.relu: zeros counted
    assert a.details["functional_activations"] == {"conv1": "torch.nn.functional.relu",
                                                   "conv2": "torch.sigmoid"}
    with torch.no_grad():  # by hand: the share of zeros of relu(bn1(conv1(x))) per channel
        after = F.relu(functional.bn1(functional.conv1(hard.x)))
    np.testing.assert_allclose(a.scores["apoz"]["conv1"],
                               (after == 0).double().mean((0, 2, 3)).numpy(), rtol=1e-12)


@pytest.mark.parametrize("name,op", [("F.softplus", "torch.nn.functional.softplus"),
                                     ("torch.exp", "torch.exp"),
                                     ("norm-after", "BatchNorm2d 'bn1'")])
def test_an_unknown_op_after_the_layer_is_said(name, op, hard):
    model = _randomized(ActivationThenNorm() if name == "norm-after"
                        else Functional(ACTIVATIONS[name][0]))
    data = hard.subset(32)
    assert read_points(model)["conv1"].unknown == op
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = am.sensitivity_analysis(model, data, am.SensitivitySpec(ratios=(0.5,)))
        sig = am.compute_significance(model, data, ["l1", "apoz"])
    said = [str(w.message) for w in caught if "cannot tell" in str(w.message)]
    assert said and all(op in message and "layer conv1" in message for message in said)
    assert op in result.uncertain["conv1"] and "masking may differ" in result.uncertain["conv1"]
    assert op in sig.details["uncertain_read_points"]["conv1"]
    assert _gap(model, data.x[:16], 0.5) > 1e-3  # approxmap was right not to vouch for it
    with pytest.raises(am.ApproxmapError, match=f"masking does not reproduce removal.*{op}"):
        am.prune_analysis(model, data, am.PruneSpec(ratio=0.5, repeats=2))


def test_cli_sensitivity_says_what_it_cannot_tell(cli, tmp_path):
    path = tmp_path / "softplus.py"
    path.write_text((FIXTURES / "case15.py").read_text().replace("F.relu(", "F.softplus("))
    args = ("--weights", FIXTURES / "case15.pt", "--data", npz("case15_hard.npz"),
            "--images", "32", *RUN, "--ratios", "0.5")
    out, err = cli.ok("sensitivity", "--model", f"{path}:build", *args, "--out", tmp_path / "s")
    warning = [line for line in err.splitlines() if "cannot tell" in line]
    assert len(warning) == 1 and "torch.nn.functional.softplus" in warning[0]
    assert "layer conv1" in warning[0]
    report = (tmp_path / "s" / "report.html").read_text()
    assert "Masking may differ from removal" in report
    _, err = cli.ok("sensitivity", "--model", spec("case15"), *args, "--out", tmp_path / "f")
    assert "cannot tell" not in err
    line = cli.refused("prune", "--model", f"{path}:build", *args[:-2], "--ratio", "0.5",
                       "--out", tmp_path / "p")
    assert "torch.nn.functional.softplus" in line
