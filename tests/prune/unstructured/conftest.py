"""Tiny models and a minimal training loop driving hooks the way slimkit.train's engine does."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn


class TinyConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc1 = nn.Linear(4 * 4 * 4, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 8, 8)
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)  # (B, 4, 4, 4)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def tiny_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 3))


def tiny_convnet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return TinyConvNet()


def _call(hooks: Sequence[Any], method: str, state: Any) -> None:
    for hook in hooks:
        fn = getattr(hook, method, None)
        if fn is not None:
            fn(state)


def train_loop(
    model: nn.Module,
    hooks: Sequence[Any] = (),
    *,
    steps: int = 20,
    make_optimizer: Callable[[Any], torch.optim.Optimizer] | None = None,
    in_shape: tuple[int, ...] = (10,),
    seed: int = 0,
) -> torch.optim.Optimizer:
    """SGD on fixed random data, calling hooks as the training engine does."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, *in_shape, generator=gen)
    y = torch.randint(0, 3, (64,), generator=gen)
    optimizer = (make_optimizer or (lambda p: torch.optim.SGD(p, lr=0.05)))(model.parameters())
    state = SimpleNamespace(model=model, optimizer=optimizer, step=0, epoch=0)
    _call(hooks, "on_train_start", state)
    model.train()
    for i in range(steps):
        batch = slice((i * 16) % 64, (i * 16) % 64 + 16)
        loss = F.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        _call(hooks, "after_backward", state)
        optimizer.step()
        state.step += 1
        _call(hooks, "after_step", state)
    _call(hooks, "on_train_end", state)
    return optimizer


@pytest.fixture
def mlp() -> nn.Module:
    return tiny_mlp()


@pytest.fixture
def convnet() -> nn.Module:
    return tiny_convnet()


@pytest.fixture
def train() -> Callable[..., torch.optim.Optimizer]:
    return train_loop


@pytest.fixture
def make_mlp() -> Callable[[int], nn.Module]:
    return tiny_mlp
