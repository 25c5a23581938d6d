"""Campaign semantics: seeds, reproducibility, resumption, engines agreeing, metrics."""

import warnings

import pytest
import torch

import approxmap as am
from approxmap.engine.base import TrialPlan


def scenarios(model_layers, std=0.5, site="output"):
    return [
        am.Scenario.single(am.Site(layer, site), am.Gaussian(std=std, scale="rel"))
        for layer in model_layers
    ]


MNIST_LAYERS = ["conv_layers.3", "fc_layers.0"]


def quiet(**kw):
    return am.LocalEngine(**kw)


def keep(tensor, generator):
    return tensor


def test_sigma_zero_reproduces_the_clean_accuracy(mnist_model, mnist_small):
    # std 0 is recognised as no error; an identity Custom error runs through the engine
    computed = [am.Scenario.single(am.Site(layer), am.Custom(keep)) for layer in MNIST_LAYERS]
    c = am.Campaign(
        mnist_model,
        mnist_small,
        scenarios(MNIST_LAYERS, std=0.0) + computed,
        am.Run(engine=quiet(), trials=2),
    )
    c.run()
    with torch.no_grad():
        clean = (mnist_model(mnist_small.x).argmax(1) == mnist_small.y).float().mean().item()
    assert c.clean_accuracy() == pytest.approx(clean)
    for summary in c.summaries():
        assert summary.accuracy == pytest.approx(clean)
        assert summary.agreement == 1.0


def test_same_seed_is_bit_identical_and_another_seed_differs(mnist_model, mnist_small):
    def records(seed):
        c = am.Campaign(
            mnist_model,
            mnist_small,
            scenarios(MNIST_LAYERS, std=1.0),
            am.Run(engine=quiet(), trials=3, seed=seed, batch_size=50),
        )
        c.run()
        return c.records()

    first, again, other = records(7), records(7), records(8)
    assert first.keys() == again.keys()
    assert all(first[k].same_result(again[k]) for k in first)
    assert [r.seed for r in first.values()] != [r.seed for r in other.values()]
    assert any(first[k].counts.loss_sum != other[k].counts.loss_sum for k in first)


def test_a_single_trial_recomputed_alone_equals_the_stored_one(mnist_model, mnist_small):
    c = am.Campaign(
        mnist_model,
        mnist_small,
        scenarios(MNIST_LAYERS, std=1.0),
        am.Run(engine=quiet(), trials=4, batch_size=50),
    )
    c.run()
    scenario = c.scenarios[scenarios(["fc_layers.0"], std=1.0)[0].key]
    stored = c.records()[(scenario.key, 2)]
    assert c.recompute(scenario, 2).same_result(stored)


@pytest.mark.parametrize("site", ["output", "input", "weight", "bias"])
def test_prefix_cached_engine_equals_the_hook_engine(residual_model, residual_data, site):
    layers = ["conv1", "conv2", "down", "fc"] if site != "bias" else ["down", "fc"]
    results = []
    for engine in (quiet(), quiet(prefix_cache=False)):
        c = am.Campaign(
            residual_model,
            residual_data,
            scenarios(layers, std=0.7, site=site),
            am.Run(engine=engine, trials=2, batch_size=16),
        )
        c.run()
        results.append(c.records())
    assert results[0].keys() == results[1].keys()
    assert all(results[0][k].same_result(results[1][k]) for k in results[0])


def test_several_sites_at_once_and_channel_subsets(residual_model, residual_data):
    two = am.Scenario(
        (
            (am.Site("conv1", "output", (0, 2)), am.Gaussian(std=2.0)),
            (am.Site("fc", "weight"), am.Gaussian(std=0.5)),
        )
    )
    results = []
    for engine in (quiet(), quiet(prefix_cache=False)):
        c = am.Campaign(
            residual_model, residual_data, [two], am.Run(engine=engine, trials=3, batch_size=16)
        )
        c.run()
        results.append(c.records())
    assert all(results[0][k].same_result(results[1][k]) for k in results[0])
    assert len(results[0]) == 3


def test_channel_subset_leaves_the_other_channels_clean(residual_model, residual_data):
    site = am.Site("conv1", "output", (1,))
    seen = {}
    hook = residual_model.bn1.register_forward_pre_hook(lambda m, a: seen.update(x=a[0].clone()))
    try:
        with torch.no_grad():
            residual_model(residual_data.x[:4])
            clean = seen["x"]
            with am.Injector(residual_model, [(site, am.Gaussian(std=1.0))], seed=0) as run:
                run(residual_data.x[:4])
    finally:
        hook.remove()
    changed = (seen["x"] != clean).flatten(2).any(2).any(0)
    assert changed.tolist() == [c == 1 for c in range(8)]


def test_trials_stacked_into_one_forward_agree_with_one_per_forward(mnist_model, mnist_small):
    results = []
    for engine in (quiet(), quiet(stack_memory_mb=4096)):
        c = am.Campaign(
            mnist_model,
            mnist_small,
            scenarios(["fc_layers.0"], std=1.0),
            am.Run(engine=engine, trials=4),
        )
        c.run()
        results.append(c.records())
    for key, record in results[0].items():
        other = results[1][key]
        assert abs(record.counts.correct1 - other.counts.correct1) <= 1
        assert record.counts.loss_sum == pytest.approx(other.counts.loss_sum, rel=1e-4)


def test_nonfinite_outputs_count_as_wrong_never_crash(mnist_model, mnist_small):
    inf = am.Scenario.single(am.Site("fc_layers.0"), am.StuckAt(value=float("1e38")))
    nan = am.Scenario.single(am.Site("fc_layers.2"), am.Custom(lambda t, g: t * float("nan")))
    c = am.Campaign(mnist_model, mnist_small, [inf, nan], am.Run(engine=quiet(), trials=1))
    c.run()
    for summary in c.summaries():
        assert summary.nonfinite == len(mnist_small)
        assert summary.accuracy == 0.0


def test_label_free_data_uses_agreement_with_the_clean_model(mnist_model, mnist_small):
    unlabeled = am.EvalData(mnist_small.x, None, "unlabeled")
    c = am.Campaign(
        mnist_model,
        unlabeled,
        scenarios(["conv_layers.6"], std=1.0),
        am.Run(engine=quiet(), trials=2),
    )
    c.run()
    summary = c.summaries()[0]
    assert c.clean_accuracy() == 1.0
    assert 0.0 < summary.accuracy < 1.0
    assert summary.accuracy == summary.agreement


def test_ci_target_adds_trials_until_the_interval_is_narrow(mnist_model, mnist_small):
    wide = am.Campaign(
        mnist_model,
        mnist_small,
        scenarios(["conv_layers.6"], std=1.5),
        am.Run(engine=quiet(), trials=3, ci_target=0.0001, max_trials=9),
    )
    wide.run()
    assert wide.summaries()[0].trials == 9
    loose = am.Campaign(
        mnist_model,
        mnist_small,
        scenarios(["conv_layers.6"], std=1.5),
        am.Run(engine=quiet(), trials=3, ci_target=0.5, max_trials=9),
    )
    loose.run()
    assert loose.summaries()[0].trials == 3


def test_store_refuses_a_campaign_with_another_setup_and_keeps_its_rows(
    tmp_path, mnist_model, mnist_small
):
    path = tmp_path / "results.sqlite"
    c = am.Campaign(
        mnist_model,
        mnist_small,
        scenarios(["fc_layers.2"]),
        am.Run(engine=quiet(), trials=2, store=path),
    )
    c.run()
    with pytest.raises(am.StoreError, match="seed: stored 0, now 1"):
        am.Campaign(
            mnist_model, mnist_small, scenarios(["fc_layers.2"]), am.Run(trials=2, seed=1, store=path)
        )
    again = am.Campaign(
        mnist_model, mnist_small, scenarios(["fc_layers.2"]), am.Run(trials=2, store=path)
    )
    assert again.records() == c.records()
    assert again.pending() == []


def test_trial_seeds_derive_from_campaign_scenario_and_index():
    seeds = {am.trial_seed(s, k, t) for s in (0, 1) for k in ("a", "b") for t in range(3)}
    assert len(seeds) == 12
    assert am.trial_seed(0, "a", 1) == am.trial_seed(0, "a", 1)
    assert all(0 <= s < 2**63 for s in seeds)


def test_engine_hands_records_in_groups_and_never_mutates_the_model(mnist_model, mnist_small):
    before = {k: v.clone() for k, v in mnist_model.state_dict().items()}
    c = am.Campaign(
        mnist_model,
        mnist_small,
        scenarios(["conv_layers.0", "fc_layers.0"], std=2.0, site="weight"),
        am.Run(trials=2),
    )
    groups = []
    plans = c.pending()
    assert all(isinstance(p, TrialPlan) for p in plans)
    quiet().run(mnist_model, mnist_small, 256, plans, c.calibration, groups.append)
    assert [len(g) for g in groups] == [2, 2]
    after = mnist_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in mnist_model.parameters())


class DataDependent(torch.nn.Module):
    """Not traceable by torch.fx: control flow depends on the data."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)
        self.fc = torch.nn.Linear(4 * 26 * 26, 10)

    def forward(self, x):
        x = self.conv(x)
        x = x if x.sum() > 0 else -x
        return self.fc(x.flatten(1))


def test_untraceable_model_falls_back_to_hooks_with_one_warning(mnist_small):
    torch.manual_seed(0)
    model = DataDependent().eval()
    scenario = scenarios(["conv", "fc"], std=0.5)
    c = am.Campaign(model, mnist_small, scenario, am.Run(engine=quiet(), trials=2))
    with pytest.warns(UserWarning, match="torch.fx cannot split") as caught:
        c.run()
    assert len(caught) == 1
    plain = am.Campaign(
        model, mnist_small, scenario, am.Run(engine=quiet(prefix_cache=False), trials=2)
    )
    plain.run()
    assert all(c.records()[k].same_result(plain.records()[k]) for k in c.records())


def test_a_block_and_its_own_layers_profile_together_with_the_prefix_cache(
    mnist_model, mnist_small
):
    nested = scenarios(["conv_layers", "conv_layers.3", "fc_layers"], std=0.5)
    results = []
    for engine in (quiet(), quiet(prefix_cache=False)):
        c = am.Campaign(mnist_model, mnist_small, nested, am.Run(engine=engine, trials=2))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback to full forwards
            c.run()
        results.append(c.records())
    assert all(results[0][k].same_result(results[1][k]) for k in results[0])


def test_channel_variants_share_a_group_of_bounded_size(mnist_model, mnist_small, monkeypatch):
    monkeypatch.setattr(am.engine.local, "MAX_GROUP", 3)
    per_filter = [
        am.Scenario.single(am.Site("conv_layers.3", "output", (i,)), am.StuckAt()) for i in range(2)
    ]
    c = am.Campaign(mnist_model, mnist_small, per_filter, am.Run(trials=2))
    groups = []
    quiet().run(mnist_model, mnist_small, 256, c.pending(), c.calibration, groups.append)
    assert [len(g) for g in groups] == [3, 1]


def test_new_scenarios_at_calibrated_sites_reuse_the_clean_pass(mnist_model, mnist_small):
    c = am.Campaign(mnist_model, mnist_small, scenarios(["fc_layers.0"], std=0.5), am.Run(trials=1))
    first = c.calibration
    c.add_scenarios(scenarios(["fc_layers.0"], std=0.75))  # e.g. a refinement step
    assert c.calibration is first
    c.add_scenarios(scenarios(["fc_layers.2"], std=0.5))  # a new site needs its std
    assert c.calibration is not first and "fc_layers.2:output" in c.calibration.site_stats
