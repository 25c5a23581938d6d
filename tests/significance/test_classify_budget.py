"""Classes from thresholds and from an accuracy budget."""

from __future__ import annotations

import pytest

import approxmap as am
from approxmap.analysis.classify import (
    check_classes,
    class_counts,
    classify_by_budget,
    classify_by_thresholds,
)
from approxmap.analysis.significance import compute_significance


@pytest.fixture(scope="module")
def sig(mnist_model):
    return compute_significance(mnist_model, None, ["l1"])


def test_thresholds_split_normalized_significance(sig):
    labels = classify_by_thresholds(sig, "l1", thresholds=(0.2, 0.5))
    norm = sig.normalized("l1")
    for layer, values in labels.items():
        for v, cls in zip(norm[layer], values, strict=True):
            assert cls == ("prunable" if v <= 0.2 else "approximable" if v <= 0.5 else "critical")
    two = classify_by_thresholds(sig, "l1", ["critical", "prunable"], [0.3])
    assert set(c for v in two.values() for c in v) == {"critical", "prunable"}


def test_bad_classes_and_thresholds(sig):
    with pytest.raises(am.InvalidParameterError, match="including 'critical'"):
        check_classes(["approximable", "prunable"])
    with pytest.raises(am.InvalidParameterError, match="ascending"):
        classify_by_thresholds(sig, "l1", thresholds=(0.5, 0.2))


def test_budget_classes_respect_the_budget(mnist_model, mnist_small, sig):
    budget = 1.0
    labels, info = classify_by_budget(mnist_model, mnist_small, sig, "l1", budget,
                                      ["critical", "prunable"], run=am.Run(batch_size=120))
    counts = class_counts(labels)
    assert info["prunable"] > 0 and info["prunable"] == sum(c["prunable"] for c in counts.values())
    assert all(c["critical"] >= 1 for c in counts.values())  # never every filter of a layer
    assert info["final_drop_pp"] <= budget + 1e-9
    # re-measure the prunable set alone: removing it stays within the budget
    from approxmap.pruning import read_points

    points = read_points(mnist_model)
    injections = [(am.Site(points[layer].module, "output", channels=tuple(
        i for i, c in enumerate(values) if c == "prunable")), am.StuckAt(0.0))
        for layer, values in labels.items() if "prunable" in values]
    with am.Injector(mnist_model, injections, seed=0) as run:
        pruned_acc = float((run(mnist_small.x).argmax(1) == mnist_small.y).float().mean())
    assert 100 * (info["clean_accuracy"] - pruned_acc) <= budget + 1e-9
    # a bigger prunable set (the next filter in line) was measured to break the budget
    failing = [m for m in info["measured"] if m["step"] == "prunable" and m["filters"] > info["prunable"]]
    assert all(m["drop_pp"] > budget for m in failing)


@pytest.mark.slow
def test_budget_with_approximable_class(mnist_model, mnist_small, sig):
    labels, info = classify_by_budget(mnist_model, mnist_small, sig, "l1", 1.0, sigma=0.5,
                                      run=am.Run(trials=2, batch_size=120))
    assert info["final_drop_pp"] <= 1.0 + 1e-9
    noisy = [m for m in info["measured"] if m["step"] == "approximable"]
    assert noisy and all(m["trials"] == 2 for m in noisy)
    assert sum(c["approximable"] for c in class_counts(labels).values()) == info["approximable"]
