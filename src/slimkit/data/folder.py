"""Images in class folders: ``root/<class>/*.png`` (or ``root/train/<class>/...`` and ``root/test/<class>/...``).

Every image is decoded once with Pillow into one uint8 tensor, resized to a common size, so batching afterwards
is as fast as for the built-in sets. Class order is the sorted folder names.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from slimkit.core.errors import ConfigError, DataError
from slimkit.data._registry import RawData, register_dataset

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(folder: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    files, labels = [], []
    for label, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue  # a class absent from this split keeps its label
        found = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        files += found
        labels += [label] * len(found)
    return files, labels


def _decode(files: list[Path], channels: int, size: tuple[int, int]) -> torch.Tensor:
    from PIL import Image  # Pillow: only needed for this source

    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(files), size[0], size[1], channels), dtype=np.uint8)
    for i, path in enumerate(files):  # one decode per file is inherent; everything after is vectorized
        try:
            with Image.open(path) as image:
                image = image.convert(mode)
                if image.size != (size[1], size[0]):
                    image = image.resize((size[1], size[0]), Image.BILINEAR)
                out[i] = np.asarray(image).reshape(size[0], size[1], channels)
        except OSError as err:
            raise DataError(f"{path}: cannot decode image ({err})") from None
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


@register_dataset("image_folder")
def image_folder(
    *,
    root: str | os.PathLike | None = None,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    test_fraction: float = 0.2,
    data_seed: int = 0,
) -> RawData:
    """Images under ``root``, one folder per class.

    Args:
        root: the folder (required). With ``train/`` and ``test/`` (or ``val/``) subfolders those are the splits;
            otherwise ``test_fraction`` of the images, chosen by ``data_seed``, form the test split.
        image_size: ``H`` or ``(H, W)`` to resize to (default: the first image's size).
        channels: 1 (grayscale) or 3 (RGB); default from the first image's mode.
        test_fraction: used only without ``train/`` and ``test/`` subfolders.
        data_seed: seeds that test split.
    """
    if root is None:
        raise ConfigError("image_folder: root is required (a folder with one subfolder of images per class)")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"image_folder: {root} is not a folder")
    test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    split = (root / "train").is_dir() and test_dir is not None
    train_dir = root / "train" if split else root
    classes = sorted({p.name for d in ([train_dir, test_dir] if split else [root]) for p in _class_dirs(d)})
    if len(classes) < 2:
        raise DataError(f"image_folder: {train_dir} needs at least two class subfolders, found {classes}")
    train_files, train_labels = _files(train_dir, classes)
    test_files, test_labels = _files(test_dir, classes) if split else ([], [])
    if not train_files:
        raise DataError(f"image_folder: no images ({', '.join(sorted(EXTENSIONS))}) under {train_dir}")

    from PIL import Image

    with Image.open(train_files[0]) as first:
        if channels is None:
            channels = 1 if first.mode in ("L", "1", "I", "I;16", "F") else 3
        if image_size is None:
            image_size = (first.height, first.width)
    if channels not in (1, 3):
        raise ConfigError(f"image_folder: channels must be 1 or 3, got {channels}")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)

    images = _decode(train_files + test_files, channels, size)
    labels = torch.tensor(train_labels + test_labels, dtype=torch.int64)
    if split:
        n = len(train_files)
        return RawData(images[:n], labels[:n], images[n:], labels[n:], tuple(classes))
    if not 0 < test_fraction < 1:
        raise ConfigError(f"image_folder: test_fraction must be in (0, 1), got {test_fraction}")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(data_seed))
    n_test = max(1, int(round(test_fraction * len(labels))))
    test_idx, train_idx = order[:n_test].sort().values, order[n_test:].sort().values
    return RawData(images[train_idx], labels[train_idx], images[test_idx], labels[test_idx], tuple(classes))
