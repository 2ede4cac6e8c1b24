"""CIFAR-10 and CIFAR-100 from the standard "python version" pickle batches (Krizhevsky 2009).

Those files are pickles, and unpickling can run arbitrary code, so they are read with :class:`RestrictedUnpickler`:
it resolves only the globals that numpy array reconstruction needs and refuses everything else (``os.system``,
``builtins.eval``, ...) with a :class:`DataError`.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slimkit.core.errors import ConfigError, DataError
from slimkit.data._registry import RawData, candidate_dirs, register_dataset

# (module, name) pairs a CIFAR batch may reference: numpy's array/dtype reconstruction (from bytes only), the codec Python uses to
# pickle bytes at protocol 2, and plain containers. Nothing here can run code or touch the system.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol 5 (re-pickled by Python 3)
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        *(("builtins", n) for n in ("list", "dict", "tuple", "set", "frozenset", "bytes", "bytearray", "str")),
    }
)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
HOW_TO_GET = (
    "download the python version from https://www.cs.toronto.edu/~kriz/cifar.html, extract it into a folder "
    "and set SLIMKIT_DATA=<folder> or pass root="
)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` (CIFAR batches: numpy arrays, lists, dicts)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: not needed by a CIFAR batch")
        return super().find_class(module, name)


def load_pickle(path: str | os.PathLike) -> Any:
    """Unpickle a CIFAR batch file safely (bytes keys, as the Python 2 files were written).

    Raises:
        DataError: naming the file when it is unreadable or references anything outside the allow list.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataError(f"{path}: not a readable CIFAR batch ({type(err).__name__}: {err})") from None


def _key(batch: dict, name: str, path: Path) -> Any:
    for key in (name.encode(), name):
        if key in batch:
            return batch[key]
    raise DataError(f"{path}: CIFAR batch has no {name!r} entry (keys: {sorted(map(str, batch))[:6]})")


def _read_batches(paths: list[Path], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for path in paths:
        batch = load_pickle(path)
        if not isinstance(batch, dict):
            raise DataError(f"{path}: expected a dict, got {type(batch).__name__}")
        data = np.asarray(_key(batch, "data", path), dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataError(f"{path}: expected data of shape (N, 3072), got {data.shape}")
        images.append(data.reshape(-1, 3, 32, 32))  # rows are R, G, B planes of 32x32
        labels.append(np.asarray(_key(batch, label_key, path), dtype=np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


def _names(meta_path: Path, key: str, fallback: tuple[str, ...]) -> tuple[str, ...]:
    if not meta_path.is_file():
        return fallback
    names = _key(load_pickle(meta_path), key, meta_path)
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def _missing(name: str, files: list[str], dirs: list[Path]) -> DataError:
    searched = ", ".join(str(d) for d in dirs) or "(no folder: root not given and SLIMKIT_DATA not set)"
    return DataError(f"{name}: files not found ({', '.join(files)}). Searched: {searched}. To get them: {HOW_TO_GET}")


@register_dataset("cifar10")
def cifar10(*, root: str | os.PathLike | None = None) -> RawData:
    """CIFAR-10: 50,000 + 10,000 colour 32x32 images of 10 classes (``cifar-10-batches-py``)."""
    train_files = [f"data_batch_{i}" for i in range(1, 6)]
    dirs = candidate_dirs(root, ["cifar-10-batches-py", "cifar10", "cifar10/cifar-10-batches-py"])
    for folder in dirs:
        if all((folder / f).is_file() for f in [*train_files, "test_batch"]):
            train_x, train_y = _read_batches([folder / f for f in train_files], "labels")
            test_x, test_y = _read_batches([folder / "test_batch"], "labels")
            classes = _names(folder / "batches.meta", "label_names", CIFAR10_CLASSES)
            return RawData(train_x, train_y, test_x, test_y, classes)
    raise _missing("cifar10", [*train_files, "test_batch"], dirs)


@register_dataset("cifar100")
def cifar100(*, root: str | os.PathLike | None = None, labels: str = "fine") -> RawData:
    """CIFAR-100: 50,000 + 10,000 colour 32x32 images; ``labels="fine"`` (100 classes) or ``"coarse"`` (20)."""
    if labels not in ("fine", "coarse"):
        raise ConfigError(f"cifar100: labels must be 'fine' or 'coarse', got {labels!r}")
    dirs = candidate_dirs(root, ["cifar-100-python", "cifar100", "cifar100/cifar-100-python"])
    for folder in dirs:
        if (folder / "train").is_file() and (folder / "test").is_file():
            train_x, train_y = _read_batches([folder / "train"], f"{labels}_labels")
            test_x, test_y = _read_batches([folder / "test"], f"{labels}_labels")
            count = 100 if labels == "fine" else 20
            classes = _names(folder / "meta", f"{labels}_label_names", tuple(str(i) for i in range(count)))
            return RawData(train_x, train_y, test_x, test_y, classes)
    raise _missing("cifar100", ["train", "test"], dirs)
