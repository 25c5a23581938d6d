"""Prefix-cached execution must equal the plain forward exactly, at every cut point."""

import pytest
import torch

import approxmap as am
from approxmap.engine.graph import Cut, GraphRunner, run_from, stackable


def _all_cuts_equal_plain_forward(model, x):
    modules = [n for n, m in model.named_modules() if n and not list(m.children())]
    runner = GraphRunner(model, modules)
    with torch.no_grad():
        expected = model(x)
        for index in range(1, len(runner.nodes)):
            got = run_from(runner, x, index)
            assert torch.equal(got, expected), f"cut before node {runner.nodes[index]}"
    return len(runner.nodes)


def test_every_cut_point_of_mnist_cnn_is_exact(mnist_model, mnist_small):
    assert _all_cuts_equal_plain_forward(mnist_model, mnist_small.x[:16]) > 10


def test_every_cut_point_of_a_residual_batchnorm_net_is_exact(residual_model, residual_data):
    assert _all_cuts_equal_plain_forward(residual_model, residual_data.x[:8]) > 15


def test_cached_site_cut_applies_errors_only_to_the_cached_output(residual_model, residual_data):
    runner = GraphRunner(residual_model, ["conv1"])
    cut = runner.cut([am.Site("conv1", "output")])
    assert cut.cached_site is not None and cut.cached_site.target == "conv1"
    x = residual_data.x[:4]
    with torch.no_grad():
        live = runner.prefix(x, cut)
        same = runner.suffix(live, cut, 1, on_output=lambda name, v: v)
        shifted = runner.suffix(live, cut, 1, on_output=lambda name, v: v + 1.0)
        with am.Injector(residual_model, [(am.Site("conv1"), am.Gaussian(std=0.0, mean=1.0))],
                         seed=0) as run:
            expected = run(x)
    assert torch.equal(same, residual_model(x).detach())
    assert torch.allclose(shifted, expected, atol=1e-6)


def test_input_and_weight_sites_cut_before_the_module(residual_model):
    runner = GraphRunner(residual_model, ["conv1"])
    assert runner.cut([am.Site("conv1", "input")]).cached_site is None
    assert runner.cut([am.Site("conv1", "weight")]).cached_site is None


def test_stacked_copies_give_each_copy_the_plain_result(residual_model, residual_data):
    runner = GraphRunner(residual_model, ["conv2"])
    cut = Cut(runner.site_nodes["conv2"][0], None)
    x = residual_data.x[:5]
    with torch.no_grad():
        live = runner.prefix(x, cut)
        out = runner.suffix(live, cut, 3)
    assert stackable(live)
    for part in out.split(5):  # matrix kernels may round differently for another batch size
        assert torch.allclose(part, residual_model(x).detach(), rtol=1e-5, atol=1e-5)


def test_prefix_values_survive_in_place_ops_in_the_suffix(residual_model, residual_data):
    runner = GraphRunner(residual_model, ["conv1"])
    cut = Cut(runner.site_nodes["conv1"][0], None)
    x = residual_data.x[:4]
    with torch.no_grad():
        live = runner.prefix(x, cut)
        first = runner.suffix(live, cut, 1)
        second = runner.suffix(live, cut, 1)
    assert torch.equal(first, second)


def test_untraceable_model_raises_a_clear_error():
    class DataDependent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else -self.fc(x)

    with pytest.raises(am.ApproxmapError, match="torch.fx cannot split"):
        GraphRunner(DataDependent(), ["fc"])
