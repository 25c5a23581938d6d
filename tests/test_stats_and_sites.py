import math
from types import SimpleNamespace

import pytest

import approxmap as am
from approxmap.analysis.profile import tolerance


def test_mean_ci_uses_student_t():
    mean, low, high = am.mean_ci([1.0, 2.0, 3.0, 4.0])
    # t(0.975, 3) = 3.182446; s = 1.290994; half = t * s / 2
    assert mean == 2.5
    assert high - mean == pytest.approx(3.182446 * 1.290994 / 2, rel=1e-5)
    assert mean - low == pytest.approx(high - mean)
    assert am.mean_ci([0.7]) == (0.7, 0.7, 0.7)
    assert all(math.isnan(v) for v in am.mean_ci([]))


def test_wilson_interval_matches_the_textbook_value():
    low, high = am.wilson(81, 263)  # Wilson (1927) style worked example: 0.2553 .. 0.3662
    assert low == pytest.approx(0.2553, abs=1e-4)
    assert high == pytest.approx(0.3662, abs=1e-4)
    assert am.wilson(10, 10)[1] == pytest.approx(1.0) and am.wilson(0, 10)[0] == pytest.approx(0.0)


def pts(*accs):
    return [SimpleNamespace(magnitude=float(i), accuracy=a) for i, a in enumerate(accs)]


@pytest.mark.parametrize("accs,expected", [
    ((0.99, 0.985, 0.97, 0.5), (1 + 1 / 3, False, [1.0, 2.0])),  # crossing 0.98 interpolated
    ((0.99, 0.99, 0.99), (2.0, True, [2.0, None])),
    ((0.95, 0.99), (None, False, [None, 0.0])),
    ((0.99, 0.97, 0.99), (0.5, False, [0.0, 1.0])),  # the first failure ends the tolerated range
])
def test_tolerance_interpolates_the_crossing_before_the_first_failure(accs, expected):
    threshold, censored, interval = tolerance(pts(*accs), clean=0.99, budget_pp=1.0)
    assert (censored, interval) == expected[1:]
    assert threshold == (None if expected[0] is None else pytest.approx(expected[0]))


def test_select_layers_by_type_glob_and_name(mnist_model):
    assert am.select_layers(mnist_model) == ["conv_layers.0", "conv_layers.3", "conv_layers.6",
                                             "fc_layers.0", "fc_layers.2"]
    assert am.select_layers(mnist_model, ["Linear"]) == ["fc_layers.0", "fc_layers.2"]
    assert am.select_layers(mnist_model, ["conv_layers.[03]", "fc_layers.2"]) == [
        "conv_layers.0", "conv_layers.3", "fc_layers.2"]


@pytest.mark.parametrize("selector,hint", [("conv_layer.0", "conv_layers.0"),
                                           ("Conv3d", "Conv2d"), ("nothing*", "")])
def test_a_selection_that_matches_nothing_names_close_matches(mnist_model, selector, hint):
    with pytest.raises(am.UnknownNameError, match="matches no layer") as info:
        am.select_layers(mnist_model, [selector])
    assert hint in str(info.value)


def test_site_keys_and_round_trip():
    site = am.Site("a.b", "weight", (5, 1))
    assert site.key == "a.b:weight[1,5]"
    assert am.Site.from_dict(site.to_dict()) == site
    with pytest.raises(am.InvalidParameterError, match="target"):
        am.Site("a", "gradient")
    with pytest.raises(am.InvalidParameterError, match="distinct"):
        am.Site("a", "output", (1, 1))
