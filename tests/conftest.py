"""Shared fixtures: the real mnist-cnn workload (small slices) and a tiny residual CNN."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import approxmap as am


@pytest.fixture(scope="session")
def mnist_model() -> nn.Module:
    return am.create_model("mnist-cnn")


@pytest.fixture(scope="session")
def mnist_full() -> am.EvalData:
    return am.create_dataset("mnist5k")


@pytest.fixture(scope="session")
def mnist_small(mnist_full) -> am.EvalData:
    return mnist_full.subset(120)


class ResidualNet(nn.Module):
    """A small residual CNN with BatchNorm, functional ops, an in-place ReLU and x.size(0)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.down = nn.Conv2d(8, 16, 1, stride=2)
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn0(self.stem(x)))
        x = F.max_pool2d(x, 2)
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.relu(out + identity)
        out = torch.sigmoid(self.down(out)) * 2.0
        return self.fc(out.view(out.size(0), -1))


@pytest.fixture(scope="session")
def residual_model() -> nn.Module:
    gen = torch.Generator().manual_seed(1)
    model = ResidualNet()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


@pytest.fixture(scope="session")
def residual_data() -> am.EvalData:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(40, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (40,), generator=gen)
    return am.EvalData(x, y, "random")
