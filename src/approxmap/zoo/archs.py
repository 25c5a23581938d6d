"""Architectures of the trainable zoo models: LeNet-5, a small VGG, ResNet-20 and VGG-16 (CIFAR).

Every model takes inputs scaled to [0, 1] and normalizes them itself in a first `normalize`
module. Activations are separate `nn.ReLU` modules so that each one is a nameable site, and
every forward is free of data-dependent control flow (torch.fx traces each of them).

>>> model = build_arch("resnet20")  # untrained; create_model("resnet20") loads the weights
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from approxmap.core.registry import Registry
from approxmap.zoo.models import Normalize

FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) for 1x28x28 inputs, with ReLU and max pooling."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.normalize = Normalize(FASHION_MEAN, FASHION_STD)
        self.conv1, self.relu1 = nn.Conv2d(1, 6, 5, padding=2), nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2, self.relu2 = nn.Conv2d(6, 16, 5), nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1, self.relu3 = nn.Linear(16 * 5 * 5, 120), nn.ReLU()
        self.fc2, self.relu4 = nn.Linear(120, 84), nn.ReLU()
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(self.normalize(x))))
        x = self.flatten(self.pool2(self.relu2(self.conv2(x))))
        return self.fc3(self.relu4(self.fc2(self.relu3(self.fc1(x)))))


def _vgg_features(channels: list[int | str], in_channels: int) -> nn.Sequential:
    """Conv3x3-BN-ReLU stacks named conv{stage}_{i}/bn/relu, 'M' = 2x2 max pool `pool{stage}`."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    stage, index = 1, 1
    for item in channels:
        if item == "M":
            layers[f"pool{stage}"] = nn.MaxPool2d(2)
            stage, index = stage + 1, 1
            continue
        suffix = f"{stage}_{index}"
        layers[f"conv{suffix}"] = nn.Conv2d(in_channels, int(item), 3, padding=1, bias=False)
        layers[f"bn{suffix}"] = nn.BatchNorm2d(int(item))
        layers[f"relu{suffix}"] = nn.ReLU()
        in_channels, index = int(item), index + 1
    return nn.Sequential(layers)


class VGGSmall(nn.Module):
    """VGG-style net for 1x28x28: 3 stages of 2 Conv3x3-BN-ReLU (32, 64, 128) + 2 linear layers."""

    def __init__(self, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        w = width
        self.normalize = Normalize(FASHION_MEAN, FASHION_STD)
        self.features = _vgg_features([w, w, "M", 2 * w, 2 * w, "M", 4 * w, 4 * w, "M"], 1)
        self.classifier = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(),
            fc1=nn.Linear(4 * w * 3 * 3, 256),
            relu_fc1=nn.ReLU(),
            fc2=nn.Linear(256, num_classes),
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


class BasicBlock(nn.Module):
    """ResNet basic block: 2 Conv3x3-BN, residual add, ReLU; 1x1 conv-BN shortcut if shape changes."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1, self.relu1 = nn.BatchNorm2d(channels), nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2, self.relu2 = nn.BatchNorm2d(channels), nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(OrderedDict(
                conv=nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                bn=nn.BatchNorm2d(channels),
            ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet20(nn.Module):
    """CIFAR-style ResNet-20 (He et al. 2016): 3 stages x 3 basic blocks (16, 32, 64 channels).

    Adapted to 1x28x28 inputs (feature maps 28, 14, 7), projection shortcuts where the shape
    changes.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.normalize = Normalize(FASHION_MEAN, FASHION_STD)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1, self.relu1 = nn.BatchNorm2d(16), nn.ReLU()
        self.layer1 = self._stage(16, 16, 1)
        self.layer2 = self._stage(16, 32, 2)
        self.layer3 = self._stage(32, 64, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, num_classes)

    @staticmethod
    def _stage(in_channels: int, channels: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            BasicBlock(in_channels, channels, stride),
            BasicBlock(channels, channels),
            BasicBlock(channels, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(self.normalize(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.pool(x)))


VGG16_CHANNELS: list[int | str] = [
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
]


class VGG16Cifar(nn.Module):
    """VGG-16 of Li et al., 'Pruning Filters for Efficient ConvNets' (ICLR 2017), for 3x32x32.

    13 Conv3x3-BN-ReLU layers and two linear layers (512 -> 512 with BN -> classes), no
    dropout: 313M MACs and 15.0M parameters, as in their Table 1.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.normalize = Normalize(CIFAR_MEAN, CIFAR_STD)
        self.features = _vgg_features(VGG16_CHANNELS, 3)
        self.classifier = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(),
            fc1=nn.Linear(512, 512),
            bn_fc1=nn.BatchNorm1d(512),
            relu_fc1=nn.ReLU(),
            fc2=nn.Linear(512, num_classes),
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


@dataclass(frozen=True)
class ArchInfo:
    """A trainable architecture: its builder and what it expects."""

    name: str
    builder: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    num_classes: int
    normalization: str
    description: str


ARCHS: Registry[ArchInfo] = Registry("arch")

_FASHION_NORM = "input in [0,1]; the model normalizes with mean 0.2860, std 0.3530"
for _info in (
    ArchInfo("lenet5", LeNet5, (1, 28, 28), 10, _FASHION_NORM,
             "LeNet-5: 2 conv + 3 linear layers, ReLU, max pooling; 61.7k parameters"),
    ArchInfo("vgg-small", VGGSmall, (1, 28, 28), 10, _FASHION_NORM,
             "VGG-style: 6 Conv3x3-BN-ReLU (32-32-64-64-128-128) + 2 linear layers"),
    ArchInfo("resnet20", ResNet20, (1, 28, 28), 10, _FASHION_NORM,
             "CIFAR-style ResNet-20 (16/32/64 channels, residual adds) for 1x28x28"),
    ArchInfo("vgg16-cifar", VGG16Cifar, (3, 32, 32), 10,
             "input in [0,1]; the model normalizes with the CIFAR-10 mean/std",
             "VGG-16 of Li et al. (ICLR 2017): 13 Conv-BN-ReLU + 2 linear; "
             "313M MACs, 15.0M params"),
):
    ARCHS.register(_info.name, _info)


def list_archs() -> list[str]:
    """Names of the trainable architectures."""
    return ARCHS.names()


def build_arch(name: str) -> nn.Module:
    """A fresh, untrained model of architecture `name` (unknown name: close-match error).

    >>> build_arch("lenet5").fc3.out_features
    10
    """
    return ARCHS.get(name).builder()
