"""Significance criteria on a tiny conv net with hand-set weights: exact values and rankings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import approxmap as am
from approxmap.analysis.significance import (
    agreement,
    compute_significance,
    filter_rows,
    list_criteria,
    register_criterion,
    spearman,
)

# Filters (weights on input channels 0 and 1) and their hand-computed facts on the input below:
# f0 [3, 0]: L1 3, L2 3,     post-ReLU [6, 3, 0, 0], mean 2.25, APoZ 0.5
# f1 [2, 2]: L1 4, L2 2.83,  post-ReLU [6, 4, 0, 2], mean 3.0,  APoZ 0.25
# f2 [0, 1]: L1 1, L2 1,     post-ReLU [1, 1, 1, 3], mean 1.5,  APoZ 0
# f3 [0,-2.5]: L1 2.5, L2 2.5, post-ReLU 0,          mean 0,    APoZ 1
FILTERS = [[3.0, 0.0], [2.0, 2.0], [0.0, 1.0], [0.0, -2.5]]
HEAD = [1.0, 0.5, 3.0, 2.0]  # logit 1 = sum of head x pooled activation; logit 0 = 0


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 1, bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor(FILTERS).view(4, 2, 1, 1))
            self.fc.weight.copy_(torch.stack([torch.zeros(4), torch.tensor(HEAD)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.relu(self.conv(x)))))


@pytest.fixture(scope="module")
def tiny() -> tuple[nn.Module, am.EvalData]:
    ch0 = torch.tensor([2.0, 1.0, -1.0, -2.0]).view(2, 2)
    ch1 = torch.tensor([1.0, 1.0, 1.0, 3.0]).view(2, 2)
    x = torch.stack([ch0, ch1]).expand(3, 2, 2, 2).contiguous()
    return Tiny().eval(), am.EvalData(x, torch.ones(3, dtype=torch.long), "tiny")


def ranking(values) -> list[int]:
    """Filters from the most to the least significant."""
    return [int(i) for i in np.argsort(-np.asarray(values), kind="stable")]


@pytest.fixture(scope="module")
def sig(tiny):
    model, data = tiny
    return compute_significance(model, data, list_criteria(), layers=["conv"],
                                run=am.Run(batch_size=2))


def test_registry_lists_the_criteria():
    assert set(list_criteria()) >= {"l1", "l2", "bn_gamma", "l1_folded", "mean", "apoz", "taylor",
                                    "resilience"}


def test_weight_criteria_exact(sig):
    assert np.allclose(sig.scores["l1"]["conv"], [3, 4, 1, 2.5])
    assert np.allclose(sig.scores["l2"]["conv"], [3, math.sqrt(8), 1, 2.5])
    assert ranking(sig.oriented("l1")["conv"]) == [1, 0, 3, 2]
    assert ranking(sig.oriented("l2")["conv"]) == [0, 1, 3, 2]


def test_activation_criteria_exact(sig):
    assert sig.details["read_points"] == {"conv": "relu"}
    assert np.allclose(sig.scores["mean"]["conv"], [2.25, 3.0, 1.5, 0.0])
    assert np.allclose(sig.scores["apoz"]["conv"], [0.5, 0.25, 0.0, 1.0])
    assert ranking(sig.oriented("mean")["conv"]) == [1, 0, 2, 3]
    assert ranking(sig.oriented("apoz")["conv"]) == [2, 1, 0, 3]


def test_taylor_and_resilience_rank_by_activation_times_head_weight(sig):
    # logit 1 = sum_i HEAD[i] * mean_i = 8.25; dL/dmean_i = -(1 - p1) * HEAD[i]
    q = 1 - 1 / (1 + math.exp(-8.25))
    means = np.array([2.25, 3.0, 1.5, 0.0])
    assert np.allclose(sig.scores["taylor"]["conv"], means * np.array(HEAD) * q / 4, rtol=1e-3)  # float32 softmax
    assert ranking(sig.scores["taylor"]["conv"]) == [2, 0, 1, 3]
    assert ranking(sig.scores["resilience"]["conv"]) == [2, 0, 1, 3]
    base = math.log1p(math.exp(-8.25))
    expected = [math.log1p(math.exp(-(8.25 - m * h))) - base for m, h in zip(means, HEAD, strict=True)]
    assert np.allclose(sig.scores["resilience"]["conv"], expected, rtol=1e-6, atol=1e-9)
    assert sig.details["resilience"]["filters"]["conv"][3]["loss_increase"] == pytest.approx(0, abs=1e-9)


def test_perturbation_resilience_has_trials(tiny):
    model, data = tiny
    sig = compute_significance(model, data, ["resilience"], layers=["conv"], sigma=0.5,
                               run=am.Run(trials=2))
    rows = sig.details["resilience"]["filters"]["conv"]
    assert [r["trials"] for r in rows] == [2, 2, 2, 2]
    assert "gaussian" in sig.details["resilience"]["error"]


def test_agreement_and_table(sig):
    rows = agreement(sig, ["l1", "l2"])
    assert rows[0]["rho"] == pytest.approx(spearman(np.array([3, 4, 1, 2.5]),
                                                    np.array([3, 2.83, 1, 2.5])))
    assert spearman(np.array([1.0, 1, 1]), np.array([1.0, 2, 3])) != spearman(np.ones(3), np.ones(3))
    table = filter_rows(sig, {"conv": ["critical"] * 4}, "l1")
    assert [r["filter"] for r in table] == [0, 1, 2, 3]
    assert table[1]["l1_normalized"] == pytest.approx(1.0)
    assert table[2]["l1_normalized"] == pytest.approx(0.0)


def test_unknown_criterion_and_bad_layer(tiny):
    model, data = tiny
    with pytest.raises(am.UnknownNameError, match="Did you mean: l1"):
        compute_significance(model, data, ["l11"])
    with pytest.raises(am.InvalidParameterError, match="float Conv2d and Linear.*is a ReLU"):
        compute_significance(model, data, ["l1"], layers=["relu"])
    with pytest.raises(am.InvalidParameterError, match="calibration data"):
        compute_significance(model, None, ["mean"])


def test_custom_criterion_joins_the_registry(tiny):
    @register_criterion("test-filter-index")
    def index(ctx):
        return {name: np.arange(4.0) for name in ctx.layers}

    model, data = tiny
    sig = compute_significance(model, data, ["test-filter-index"])
    assert ranking(sig.scores["test-filter-index"]["conv"]) == [3, 2, 1, 0]
