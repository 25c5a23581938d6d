"""Helpers of the Ray engine's tests: the scenarios, a local reference, record comparison.

The local reference pins one torch thread, as the Ray engine does: on the CPU, MKL's GEMM
rounds a batch of a few rows differently with another thread count.
"""

from __future__ import annotations

import pytest

import approxmap as am

SKIP = "Ray is not installed: pip install 'approxmap[ray]'"


def require_ray():
    """The `ray` module, or a skip with the reason. Without Ray, `import ray` may find this
    folder (tests/ray) as a namespace package: that is no Ray either."""
    ray = pytest.importorskip("ray", reason=SKIP)
    if not hasattr(ray, "init"):
        pytest.skip(SKIP, allow_module_level=True)
    return ray

LAYERS = ("conv_layers.0", "conv_layers.3", "fc_layers.0")


def local(**settings) -> am.Run:
    """A Run on the local engine with one torch thread (the Ray engine's default)."""
    return am.Run(engine=am.create_engine("local", threads=1), **settings)


def scenarios(layers=LAYERS, sigmas=(0.0, 0.5, 1.0)) -> list[am.Scenario]:
    """Single-site Gaussian scenarios (std 0 included: trials the clean pass answers)."""
    return [am.Scenario.single(am.Site(layer), am.Gaussian(std=s))
            for layer in layers for s in sigmas]


def records(model, data, run: am.Run, scenario_list=None, name="campaign"):
    campaign = am.Campaign(model, data, scenario_list or scenarios(), run, name=name)
    campaign.run()
    return campaign.records()


def assert_same_records(got: dict, expected: dict) -> None:
    """The same trials, each equal in everything but its time (TrialRecord.same_result)."""
    assert sorted(got) == sorted(expected)
    differing = [key for key in expected if not got[key].same_result(expected[key])]
    assert not differing, f"{len(differing)} records differ, e.g. {differing[0]}: " \
                          f"{got[differing[0]].counts} != {expected[differing[0]].counts}"
