"""Tiny in-memory datasets and models for the training tests (a few hundred samples, milliseconds per epoch)."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class BlobDataset(torch.utils.data.Dataset):
    """Linearly separable 3-class points in 8-D, with a vectorized ``get_batch`` (like the zoo datasets)."""

    def __init__(self, n: int = 256, seed: int = 0, vectorized: bool = True) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=g)
        w = torch.randn(8, 3, generator=torch.Generator().manual_seed(1234))
        self.y = (self.x @ w).argmax(dim=1)
        self.get_batch_calls = 0
        if not vectorized:
            self.get_batch = None

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: F811
        self.get_batch_calls += 1
        return self.x[indices], self.y[indices]


def make_mlp(seed: int = 0, dropout: float = 0.1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))


@pytest.fixture
def blobs() -> BlobDataset:
    return BlobDataset(256, seed=0)


@pytest.fixture
def blobs_val() -> BlobDataset:
    return BlobDataset(128, seed=1)


@pytest.fixture
def dataset_cls() -> type[BlobDataset]:
    return BlobDataset


@pytest.fixture
def mlp():
    return make_mlp


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy CPU each op would wait for a second one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
