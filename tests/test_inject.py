import pytest
import torch

import approxmap as am


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_hooks_are_removed_when_the_forward_raises(mnist_model):
    injections = [(am.Site("conv_layers.0"), am.Gaussian(std=1.0)),
                  (am.Site("fc_layers.0", "input"), am.Gaussian(std=1.0))]
    with pytest.raises(RuntimeError):
        with am.Injector(mnist_model, injections, seed=0) as run:
            assert hook_count(mnist_model) == 2
            run(torch.zeros(2, 3, 28, 28))  # wrong channel count: the forward raises
    assert hook_count(mnist_model) == 0


def test_hooks_are_removed_when_an_error_model_raises(mnist_model):
    def explode(tensor, generator):
        raise ValueError("boom")

    with pytest.raises(am.ModelError, match="Custom error function .*explode raised ValueError: boom"):
        with am.Injector(mnist_model, [(am.Site("fc_layers.2"), am.Custom(explode))], seed=0) as run:
            run(torch.zeros(1, 1, 28, 28))
    assert hook_count(mnist_model) == 0


def test_hooks_are_removed_when_a_campaign_trial_raises(mnist_model, mnist_small):
    def explode(tensor, generator):
        raise ValueError("boom")

    bad = am.Scenario.single(am.Site("conv_layers.3"), am.Custom(explode))
    for engine in (am.LocalEngine(), am.LocalEngine(prefix_cache=False)):
        c = am.Campaign(mnist_model, mnist_small, [bad], am.Run(engine=engine, trials=1))
        with pytest.raises(am.ApproxmapError, match="Custom error function .* raised ValueError: boom"):
            c.run()
        assert hook_count(mnist_model) == 0
        assert c.records() == {}


def test_weight_injection_never_changes_the_users_model(mnist_model):
    before = {k: v.clone() for k, v in mnist_model.state_dict().items()}
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        clean = mnist_model(x)
        injections = [(am.Site("conv_layers.0", "weight"), am.Gaussian(std=5.0)),
                      (am.Site("fc_layers.2", "bias"), am.Gaussian(std=5.0))]
        with am.Injector(mnist_model, injections, seed=0) as run:
            faulty = run(x)
        after = mnist_model(x)
    assert not torch.allclose(faulty, clean)
    assert torch.equal(after, clean)
    assert all(torch.equal(before[k], v) for k, v in mnist_model.state_dict().items())


def test_faulty_weights_stay_the_same_for_every_batch_of_a_trial(mnist_model):
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        with am.Injector(mnist_model, [(am.Site("fc_layers.0", "weight"), am.Gaussian(std=1.0))],
                         seed=0) as run:
            assert torch.equal(run(x), run(x))


def test_weight_channels_perturb_only_those_filters(mnist_model):
    site = am.Site("conv_layers.0", "weight", (3, 5))
    gen = torch.Generator().manual_seed(0)
    conv = mnist_model.conv_layers[0]
    state = site.kind.begin(site, am.Gaussian(std=1.0), conv, None, gen)
    changed = (state["weight"] != conv.weight).flatten(1)
    assert changed.any(1).nonzero().flatten().tolist() == [3, 5]


@pytest.mark.parametrize("site,message", [
    (am.Site("conv_layers.9"), "No layer named 'conv_layers.9'.*Did you mean"),
    (am.Site("conv_layers.1", "weight"), "has no weight"),
    (am.Site("conv_layers.0", "weight", (40,)), "out of range"),
])
def test_bad_sites_are_refused_clearly(mnist_model, site, message):
    with pytest.raises(am.ApproxmapError, match=message):
        am.Injector(mnist_model, [(site, am.Gaussian(std=1.0))], seed=0)


def test_relative_errors_need_a_reference_std(mnist_model):
    with pytest.raises(am.InvalidParameterError, match="relative"):
        am.Injector(mnist_model, [(am.Site("fc_layers.0"), am.Gaussian(std=1.0, scale="rel"))],
                    seed=0)


def test_activation_channel_out_of_range_is_a_clear_error(mnist_model, mnist_small):
    scenario = am.Scenario.single(am.Site("conv_layers.0", "output", (99,)), am.Gaussian(std=1.0))
    with pytest.raises(am.InvalidParameterError, match="Channel 99 is out of range"):
        am.Campaign(mnist_model, mnist_small, [scenario], am.Run(trials=1))
