"""Tiny models and data for the quantization tests (seconds on a shared 2-core CPU)."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def _randomize_bn(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics so folding is really tested."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            with torch.no_grad():
                m.running_mean.uniform_(-1, 1, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.5, 0.5, generator=g)
    return model.eval()


def make_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        nn.Linear(16 * 16, 32), nn.ReLU(),
        nn.Linear(32, 10),
    )
    return _randomize_bn(model)


@pytest.fixture
def cnn() -> nn.Module:
    return make_cnn()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(32, 1, 16, 16, generator=torch.Generator().manual_seed(2))


@pytest.fixture
def batches(images: torch.Tensor) -> list[torch.Tensor]:
    return [images[:16], images[16:]]


@pytest.fixture
def cnn_factory():
    return make_cnn
