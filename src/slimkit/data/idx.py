"""MNIST and Fashion-MNIST from their IDX files (LeCun's format), gzip-compressed or raw.

IDX: two zero bytes, a type code, the number of dimensions, each dimension as a big-endian int32, then the data.
Parsing is one ``numpy.frombuffer`` per file; Fashion-MNIST loads in about a second, most of it gunzip.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch

from slimkit.core.errors import DataError
from slimkit.data._registry import RawData, candidate_dirs, register_dataset

# IDX type code -> numpy dtype (big-endian where it matters)
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"  # where dataset-fashion-mnist installs
HOW_TO_GET = {
    "fashion_mnist": (
        "install the Debian package (sudo apt-get install dataset-fashion-mnist, which puts them in "
        "/usr/share/datasets/fashion-mnist), or download the four .gz files from "
        "https://github.com/zalandoresearch/fashion-mnist into a folder and set SLIMKIT_DATA=<folder> or pass root="
    ),
    "mnist": (
        "download the four IDX files (train-images-idx3-ubyte.gz, ...) from https://yann.lecun.com/exdb/mnist/ "
        "or a mirror into a folder and set SLIMKIT_DATA=<folder> or pass root="
    ),
}


def parse_idx(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Decode one IDX file's bytes into an array of its declared type and shape.

    Raises:
        DataError: naming ``source`` when the header or the length is wrong.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DataError(f"{source}: not an IDX file (bad magic {data[:4].hex() or 'empty'})")
    dtype, ndim = IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: IDX header truncated")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(f"{source}: IDX data has {len(data) - header} bytes, shape {shape} needs {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``); the inverse of :func:`read_idx`."""
    path = Path(path)
    codes = {dtype: code for code, dtype in IDX_TYPES.items()}
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if dtype not in codes:
        raise DataError(f"{path}: IDX cannot store {array.dtype}")
    payload = bytes([0, 0, codes[dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += np.ascontiguousarray(array, dtype=dtype).tobytes()
    path.write_bytes(gzip.compress(payload, compresslevel=1) if path.suffix == ".gz" else payload)
    return path


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw (detected from its first bytes, not its name)."""
    path = Path(path)
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    return parse_idx(data, source=str(path))


def _find(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem, stem.replace("-idx", ".idx")):  # also torchvision-style "train-images.idx3"
        if (folder / name).is_file():
            return folder / name
    return None


def load_idx_dataset(name: str, dirs: list[Path], classes: tuple[str, ...]) -> RawData:
    """Load the four IDX files from the first folder in ``dirs`` that has them all."""
    for folder in dirs:
        paths = {key: _find(folder, stem) for key, stem in FILES.items()}
        if all(paths.values()):
            arrays = {key: read_idx(p) for key, p in paths.items()}  # type: ignore[arg-type]
            for split in ("train", "test"):
                images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
                if images.ndim != 3 or images.dtype != np.uint8 or labels.shape != images.shape[:1]:
                    raise DataError(
                        f"{paths[f'{split}_images']}: expected uint8 images (N, H, W) and N labels, got "
                        f"{images.dtype} {images.shape} and {labels.shape}"
                    )
            return RawData(
                train_images=torch.from_numpy(arrays["train_images"].copy()).unsqueeze(1),  # (N, 1, H, W)
                train_labels=torch.from_numpy(arrays["train_labels"].astype(np.int64)),
                test_images=torch.from_numpy(arrays["test_images"].copy()).unsqueeze(1),
                test_labels=torch.from_numpy(arrays["test_labels"].astype(np.int64)),
                classes=classes,
            )
    wanted = ", ".join(f"{stem}[.gz]" for stem in FILES.values())
    searched = ", ".join(str(d) for d in dirs) or "(no folder: root not given and SLIMKIT_DATA not set)"
    raise DataError(f"{name}: IDX files not found ({wanted}). Searched: {searched}. To get them: {HOW_TO_GET[name]}")


@register_dataset("fashion_mnist")
def fashion_mnist(*, root: str | os.PathLike | None = None) -> RawData:
    """Fashion-MNIST (Xiao et al. 2017): 60,000 + 10,000 grayscale 28x28 images of 10 clothing classes."""
    dirs = candidate_dirs(
        root, ["fashion_mnist", "fashion-mnist", "FashionMNIST/raw"], [FASHION_MNIST_SYSTEM_DIR]
    )
    return load_idx_dataset("fashion_mnist", dirs, FASHION_CLASSES)


@register_dataset("mnist")
def mnist(*, root: str | os.PathLike | None = None) -> RawData:
    """MNIST (LeCun et al. 1998): 60,000 + 10,000 grayscale 28x28 handwritten digits."""
    dirs = candidate_dirs(root, ["mnist", "MNIST/raw"], ["/usr/share/datasets/mnist"])
    return load_idx_dataset("mnist", dirs, tuple(str(d) for d in range(10)))
