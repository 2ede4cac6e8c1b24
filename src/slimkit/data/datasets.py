"""In-memory image datasets with vectorized batching, and :func:`load_dataset`, the one entry point.

Images stay uint8 in memory (Fashion-MNIST's 60,000 images take 47 MB) and are normalized per batch, so
``get_batch(indices)`` builds a whole batch in one indexing op instead of a Python loop over samples: on two CPU
cores the loader, not the model, is otherwise the bottleneck for small networks.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from slimkit.core.errors import ConfigError
from slimkit.data._registry import DATASETS
from slimkit.data.augment import AUGMENTS, Augment, augment_batch

Batch = tuple[torch.Tensor, torch.Tensor]


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact per-channel mean and std of uint8 ``(N, C, H, W)`` images on the [0, 1] scale, from 256-bin histograms."""
    channels = images.shape[1]
    values = torch.arange(256, dtype=torch.float64) / 255.0
    mean, std = torch.zeros(channels), torch.ones(channels)
    for c in range(channels):  # a loop over channels (1 or 3), each a vectorized bincount
        hist = torch.bincount(images[:, c].reshape(-1), minlength=256).double()
        total = hist.sum().clamp_min(1)
        m = (hist * values).sum() / total
        var = (hist * (values - m) ** 2).sum() / total
        mean[c], std[c] = float(m), max(float(var.sqrt()), 1e-3)
    return mean, std


class ImageTensorDataset(Dataset):
    """uint8 images ``(N, C, H, W)`` and int64 labels, returned as ``(x float32 normalized, y int64)``.

    Args:
        images: uint8 tensor ``(N, C, H, W)``.
        labels: int64 tensor ``(N,)``.
        mean: per-channel mean on the [0, 1] scale (``(C,)``); ``x = (pixel / 255 - mean) / std``.
        std: per-channel std on the [0, 1] scale (``(C,)``).
        classes: class names, indexed by label.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: torch.Tensor,
        std: torch.Tensor,
        classes: tuple[str, ...] = (),
    ) -> None:
        self.images = images
        self.labels = labels
        self.mean = mean.float()
        self.std = std.float()
        self.classes = classes
        # x = pixel * scale + shift, per channel, shaped to broadcast over (B, C, H, W)
        self._scale = (1.0 / (255.0 * self.std)).view(1, -1, 1, 1)
        self._shift = (-self.mean / self.std).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> Batch:
        x, y = self.get_batch(torch.tensor([index]))
        return x[0], y[0]

    def get_batch(self, indices: torch.Tensor, *, augment: str = "none", padding: int = 0) -> Batch:
        """The samples at ``indices`` as ``(x (B, C, H, W) float32 normalized, y (B,) int64)``."""
        images = self.images[indices]  # (B, C, H, W) uint8
        if augment != "none":
            images = augment_batch(images, augment, padding)
        x = images.float().mul_(self._scale).add_(self._shift)
        return x, self.labels[indices]


class DatasetView(Dataset):
    """The samples of ``base`` at ``indices`` (a split or a subset), batchable like ``base``.

    ``augment`` (training splits only) applies random crops (``padding`` pixels) and/or flips to every batch.
    """

    def __init__(
        self, base: ImageTensorDataset, indices: torch.Tensor, *, augment: Augment = "none", padding: int = 0
    ) -> None:
        self.base = base
        self.indices = indices.long()
        self.augment = augment
        self.padding = padding

    @property
    def labels(self) -> torch.Tensor:
        return self.base.labels[self.indices]

    @property
    def classes(self) -> tuple[str, ...]:
        return self.base.classes

    def __len__(self) -> int:
        return self.indices.shape[0]

    def __getitem__(self, index: int) -> Batch:
        x, y = self.get_batch(torch.tensor([index]))
        return x[0], y[0]

    def get_batch(self, indices: torch.Tensor) -> Batch:
        return self.base.get_batch(self.indices[indices], augment=self.augment, padding=self.padding)


@dataclass(frozen=True)
class DatasetSplits:
    """Train / validation / test datasets plus what a model needs to fit them.

    ``val`` is ``None`` when ``val_fraction`` is 0. Each split is a :class:`DatasetView` of the full training or
    test set (``.base``, ``.indices``, ``.labels``) with ``get_batch(indices)``, ``__getitem__`` and
    ``__len__``; ``x`` is float32 ``(C, H, W)`` normalized by the training set's per-channel mean and std.
    """

    train: DatasetView
    val: DatasetView | None
    test: DatasetView
    in_channels: int
    num_classes: int
    image_size: tuple[int, int]
    name: str
    classes: tuple[str, ...]

    @property
    def mean(self) -> torch.Tensor:
        """Per-channel mean (on the [0, 1] pixel scale) subtracted from every split: the training set's."""
        return self.train.base.mean

    @property
    def std(self) -> torch.Tensor:
        """Per-channel std (on the [0, 1] pixel scale) every split is divided by: the training set's."""
        return self.train.base.std

    def example_inputs(self, batch_size: int = 1) -> torch.Tensor:
        """The first ``batch_size`` training images, ``(B, C, H, W)``: example inputs for tracing and profiling."""
        return self.train.get_batch(torch.arange(min(batch_size, len(self.train))))[0]


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    subset: int | None = None,
    normalize: bool = True,
    augment: Augment = "none",
    padding: int | None = None,
    **options,
) -> DatasetSplits:
    """Load a dataset, split a validation set off its training set, and normalize it.

    Args:
        name: ``fashion_mnist``, ``mnist``, ``cifar10``, ``cifar100``, ``image_folder``, ``synthetic``, or any name
            added with :func:`slimkit.data.register_dataset`.
        root: folder to search first (before ``$SLIMKIT_DATA`` and the system default).
        val_fraction: fraction of the training set held out for validation, in [0, 1).
        seed: seeds the train/validation split and the subset choice (same seed, same split).
        subset: keep only this many (seeded, random) samples of each split, for quick runs.
        normalize: subtract the training set's per-channel mean and divide by its std (else scale to [0, 1]).
        augment: training-split augmentation, ``"none"``, ``"flip"``, ``"crop"`` or ``"crop_flip"`` (the CIFAR
            recipe); validation and test splits are never augmented.
        padding: crop padding in pixels (default: image height // 8, i.e. 4 on 32x32, 3 on 28x28).
        **options: options of the source, e.g. ``num_samples`` for ``synthetic``.

    Returns:
        The splits and the input/label geometry (``in_channels``, ``num_classes``, ``image_size``).

    Raises:
        ConfigError: an unknown name or option, or a bad fraction/subset.
        DataError: files missing or unreadable; the message names the paths searched and how to get the data.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction: must be in [0, 1), got {val_fraction}")
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, int) or subset < 1):
        raise ConfigError(f"subset: must be a positive number of samples or None, got {subset!r}")
    if augment not in AUGMENTS:
        raise ConfigError(f"augment: must be one of {', '.join(AUGMENTS)}, got {augment!r}")
    if padding is not None and (isinstance(padding, bool) or not isinstance(padding, int) or padding < 0):
        raise ConfigError(f"padding: must be a non-negative number of pixels, got {padding!r}")
    source = DATASETS.get(name)
    params = inspect.signature(source).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            known = ", ".join(sorted(set(params) - {"root"})) or "(none)"
            raise ConfigError(f"dataset {name!r}: unknown option {unknown[0]!r}; its options: {known}")
    raw = source(root=root, **options)

    if normalize:
        mean, std = channel_stats(raw.train_images)
    else:
        channels = raw.train_images.shape[1]
        mean, std = torch.zeros(channels), torch.ones(channels)
    train_all = ImageTensorDataset(raw.train_images, raw.train_labels, mean, std, raw.classes)
    test_all = ImageTensorDataset(raw.test_images, raw.test_labels, mean, std, raw.classes)

    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train_all), generator=generator)
    n_val = int(round(val_fraction * len(train_all)))
    if val_fraction > 0 and len(train_all) > 1:
        n_val = min(max(n_val, 1), len(train_all) - 1)
    train_idx, val_idx = order[n_val:], order[:n_val]
    test_idx = torch.arange(len(test_all))
    if subset is not None:
        train_idx, val_idx = train_idx[:subset], val_idx[:subset]
        if subset < len(test_all):
            test_idx = torch.randperm(len(test_all), generator=generator)[:subset]

    _, channels, height, width = raw.train_images.shape
    return DatasetSplits(
        train=DatasetView(
            train_all, train_idx, augment=augment, padding=height // 8 if padding is None else padding
        ),
        val=DatasetView(train_all, val_idx) if val_fraction > 0 else None,
        test=DatasetView(test_all, test_idx),
        in_channels=channels,
        num_classes=len(raw.classes),
        image_size=(height, width),
        name=name,
        classes=raw.classes,
    )
