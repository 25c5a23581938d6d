"""The trainable architectures: shapes, own normalization, fx traceability, MACs and params."""

from __future__ import annotations

import operator

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from approxmap.core.exceptions import UnknownNameError
from approxmap.zoo.archs import ARCHS, build_arch, list_archs
from approxmap.zoo.models import Normalize

ARCH_NAMES = list_archs()


def macs(model: nn.Module, shape: tuple[int, ...]) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, *shape))
    return counter.get_total_flops() / 2


def test_all_four_archs_are_registered():
    assert ARCH_NAMES == ["lenet5", "resnet20", "vgg-small", "vgg16-cifar"]


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_shape_normalization_and_fx_trace(name):
    info = ARCHS.get(name)
    model = build_arch(name).eval()
    first_name, first = next(iter(model.named_children()))
    assert first_name == "normalize" and isinstance(first, Normalize)
    x = torch.rand(3, *info.input_shape)
    with torch.no_grad():
        out = model(x)
        traced = torch.fx.symbolic_trace(model)
        assert torch.equal(traced(x), out)
    assert out.shape == (3, info.num_classes)
    assert not any(n.op == "call_function" and n.target is torch.relu for n in traced.graph.nodes)


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_every_relu_module_is_used_once(name):
    traced = torch.fx.symbolic_trace(build_arch(name))
    calls = [n.target for n in traced.graph.nodes if n.op == "call_module"]
    relus = [n for n, m in build_arch(name).named_modules() if isinstance(m, nn.ReLU)]
    assert relus and all(calls.count(r) == 1 for r in relus)


def test_vgg16_cifar_matches_li_et_al_table_1():
    model = build_arch("vgg16-cifar").eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) == 13 and len(bns) == 14 and len(linears) == 2
    assert (linears[0].in_features, linears[0].out_features, linears[1].in_features) == (512, 512, 512)
    assert macs(model, (3, 32, 32)) == pytest.approx(313e6, rel=0.01)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(15.0e6, rel=0.01)


def test_resnet20_has_19_convs_and_9_residual_adds():
    model = build_arch("resnet20")
    convs3 = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3) == 19
    adds = [n for n in torch.fx.symbolic_trace(model).graph.nodes
            if n.op == "call_function" and n.target in (operator.add, torch.add)]
    assert len(adds) == 9
    assert macs(model.eval(), (1, 28, 28)) == pytest.approx(31.0e6, rel=0.02)


def test_vgg_small_has_six_batchnormed_convs():
    model = build_arch("vgg-small")
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) >= 6
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) >= 6


def test_lenet5_is_the_classic_size():
    assert sum(p.numel() for p in build_arch("lenet5").parameters()) == 61_706


def test_unknown_arch():
    with pytest.raises(UnknownNameError, match="Did you mean: vgg-small"):
        build_arch("vgg_small")
