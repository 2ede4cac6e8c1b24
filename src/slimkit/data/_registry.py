"""The dataset registry and the search path every file-based dataset uses.

A dataset source is a function ``f(*, root, **options) -> RawData`` registered with ``@register_dataset(name)``;
:func:`slimkit.data.load_dataset` turns its tensors into normalized, split, batchable datasets.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from slimkit.core.errors import DataError
from slimkit.core.registry import Registry

ENV_VAR = "SLIMKIT_DATA"


@dataclass(frozen=True)
class RawData:
    """What a source returns: uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)`` for train and test."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if images.dtype != torch.uint8 or images.dim() != 4:
                raise DataError(f"{split} images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
            if labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
                raise DataError(
                    f"{split} labels must be int64 ({images.shape[0]},), got {labels.dtype} {tuple(labels.shape)}"
                )
            if labels.numel() and (labels.min() < 0 or labels.max() >= len(self.classes)):
                raise DataError(f"{split} labels must lie in [0, {len(self.classes)}), got {labels.min()}..{labels.max()}")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise DataError(
                f"train images {tuple(self.train_images.shape[1:])} and test images "
                f"{tuple(self.test_images.shape[1:])} differ in shape"
            )


Source = Callable[..., RawData]
DATASETS: Registry[Source] = Registry("dataset")


def register_dataset(name: str) -> Callable[[Source], Source]:
    """Decorator adding a source ``f(*, root: Path | None, **options) -> RawData`` under ``name``."""
    return DATASETS.register(name)


def list_datasets() -> list[str]:
    return DATASETS.names()


def candidate_dirs(root: str | os.PathLike | None, subdirs: Iterable[str], defaults: Iterable[str] = ()) -> list[Path]:
    """The folders to search: ``root`` alone when given (the user said where the data is); otherwise
    ``$SLIMKIT_DATA``, each with ``subdirs`` under it, then the system defaults."""
    subdirs = list(subdirs)
    if root is not None:
        base = Path(root).expanduser()
        return list(dict.fromkeys([base] + [base / sub for sub in subdirs]))
    bases = []
    if os.environ.get(ENV_VAR):
        bases.append(Path(os.environ[ENV_VAR]).expanduser())
    subdirs = list(subdirs)
    found: list[Path] = []
    for base in bases:
        found += [base] + [base / sub for sub in subdirs]
    found += [Path(d) for d in defaults]
    return list(dict.fromkeys(found))  # keep order, drop duplicates
