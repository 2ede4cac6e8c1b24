"""Datasets and loaders: Fashion-MNIST, MNIST, CIFAR-10/100, image folders, and synthetic sets.

``load_dataset(name, ...)`` returns :class:`DatasetSplits` whose splits batch with ``get_batch(indices)``;
``make_loader(dataset, batch_size=..., shuffle=...)`` iterates over them (written by the training engine).
"""

from __future__ import annotations

from typing import Any

from slimkit.data import cifar, folder, idx, synthetic  # noqa: F401  (registers the sources)
from slimkit.data._registry import RawData, list_datasets, register_dataset
from slimkit.data.cifar import RestrictedUnpickler
from slimkit.data.datasets import DatasetSplits, DatasetView, ImageTensorDataset, channel_stats, load_dataset
from slimkit.data.idx import read_idx, write_idx

__all__ = [
    "DatasetSplits",
    "DatasetView",
    "ImageTensorDataset",
    "RawData",
    "RestrictedUnpickler",
    "channel_stats",
    "list_datasets",
    "load_dataset",
    "make_loader",
    "read_idx",
    "register_dataset",
    "write_idx",
]


def __getattr__(name: str) -> Any:
    # make_loader lives in slimkit.data.loader (the training engine's); imported on first use
    if name == "make_loader":
        from slimkit.data.loader import make_loader

        return make_loader
    raise AttributeError(f"module 'slimkit.data' has no attribute {name!r}")
