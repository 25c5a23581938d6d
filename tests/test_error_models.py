import math

import pytest
import torch

import approxmap as am
from approxmap.core.errors import error_model_from_dict


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("cls", [am.Gaussian, am.Uniform])
@pytest.mark.parametrize("mean,std", [(0.0, 1.0), (0.5, 0.2), (-2.0, 3.0)])
def test_additive_error_has_the_requested_mean_and_std(cls, mean, std):
    x = torch.full((400_000,), 5.0)
    err = cls(std=std, mean=mean).apply(x, gen()) - x
    assert err.mean().item() == pytest.approx(mean, abs=0.01 * max(std, 1))
    assert err.std().item() == pytest.approx(std, rel=0.01)


def test_uniform_error_is_bounded_by_sqrt3_std():
    err = am.Uniform(std=1.0, mean=0.0).apply(torch.zeros(100_000), gen())
    assert err.abs().max().item() <= math.sqrt(3) + 1e-6
    assert err.abs().max().item() > 0.99 * math.sqrt(3)


@pytest.mark.parametrize("model", [am.Gaussian(std=1.0, rate=0.1), am.Uniform(std=1.0, rate=0.1),
                                   am.StuckAt(value=7.0, rate=0.1)])
def test_rate_is_the_fraction_of_elements_hit(model):
    x = torch.zeros(200_000)
    hit = (model.apply(x, gen()) != 0).float().mean().item()
    assert hit == pytest.approx(0.1, abs=0.005)


def test_stuck_at_sets_the_value():
    out = am.StuckAt(value=-3.0, rate=1.0).apply(torch.randn(50), gen())
    assert torch.equal(out, torch.full((50,), -3.0))


@pytest.mark.parametrize("model", [am.Gaussian(std=0.3, rate=0.5), am.Uniform(std=0.3),
                                   am.StuckAt(rate=0.3)])
def test_same_seed_same_errors_other_seed_other_errors(model):
    x = torch.randn(1000)
    assert torch.equal(model.apply(x, gen(3)), model.apply(x, gen(3)))
    assert not torch.equal(model.apply(x, gen(3)), model.apply(x, gen(4)))


def test_apply_never_modifies_its_input():
    x = torch.randn(100)
    before = x.clone()
    am.Gaussian(std=1.0).apply(x, gen())
    am.StuckAt(rate=0.5).apply(x, gen())
    assert torch.equal(x, before)


def test_zero_error_is_the_identity():
    x = torch.randn(10)
    assert am.Gaussian(std=0.0).apply(x, gen()) is x
    assert am.Gaussian(std=1.0, rate=0.0).is_identity()


def test_relative_models_resolve_to_absolute_ones():
    stats = am.SiteStats.of(torch.tensor([-4.0, 4.0]))  # std 4
    model = am.Gaussian(std=0.5, mean=0.1, scale="rel").resolve(stats)
    assert model == am.Gaussian(std=2.0, mean=0.4, scale="abs")
    with pytest.raises(am.InvalidParameterError, match="relative"):
        am.Gaussian(std=1.0, scale="rel").apply(torch.zeros(3), gen())


@pytest.mark.parametrize("model", [am.Gaussian(std=0.25, mean=-1.0, rate=0.5, scale="rel"),
                                   am.Uniform(std=2.0), am.StuckAt(value=1.5, rate=0.01)])
def test_dict_round_trip(model):
    assert error_model_from_dict(model.to_dict()) == model


@pytest.mark.parametrize("kwargs,message", [
    ({"std": -1.0}, r"'std' parameter of Gaussian must be >= 0. Got -1"),
    ({"rate": 1.5}, r"'rate' parameter of Gaussian must be \[0, 1\]. Got 1.5"),
    ({"mean": float("nan")}, "finite number"),
    ({"scale": "log"}, "'scale' parameter"),
])
def test_bad_parameters_say_what_and_what_was_given(kwargs, message):
    with pytest.raises(am.InvalidParameterError, match=message):
        am.Gaussian(**kwargs)


def flip_sign(tensor, generator):
    return -tensor


def test_custom_callable_runs_and_round_trips_by_import_path():
    model = am.Custom(flip_sign)
    assert torch.equal(model.apply(torch.ones(3), gen()), -torch.ones(3))
    rebuilt = error_model_from_dict(model.to_dict())
    assert rebuilt.fn is flip_sign


def test_custom_callable_must_keep_the_shape():
    with pytest.raises(am.InvalidParameterError, match="shape"):
        am.Custom(lambda t, g: t.sum()).apply(torch.ones(3), gen())


def test_registry_lists_and_creates_with_close_matches():
    assert {"gaussian", "uniform", "stuck", "custom"} <= set(am.list_error_models())
    assert am.create_error_model("gaussian", std=0.1) == am.Gaussian(std=0.1)
    with pytest.raises(am.UnknownNameError, match="Did you mean: gaussian"):
        am.create_error_model("gausian")
