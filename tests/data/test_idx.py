import gzip
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from slimkit.core.errors import DataError
from slimkit.data import idx, load_dataset, read_idx, write_idx


def _hand_written_idx(array: np.ndarray) -> bytes:
    """IDX bytes built from the format spec, independently of write_idx."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()


@pytest.mark.parametrize("compressed", [True, False], ids=["gz", "raw"])
def test_read_idx_parses_hand_written_files(tmp_path, compressed):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = _hand_written_idx(array)
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if compressed else data)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", [".gz", ""])
def test_write_read_round_trip(tmp_path, dtype, suffix):
    array = (np.random.default_rng(1).standard_normal((3, 5)) * 50).astype(dtype)
    back = read_idx(write_idx(tmp_path / f"a{suffix}", array))
    np.testing.assert_array_equal(back, array)


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(DataError, match="bad: not an IDX file"):
        read_idx(bad)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(_hand_written_idx(np.zeros((4, 4), np.uint8))[:-3])
    with pytest.raises(DataError, match="truncated: IDX data has 13 bytes, shape \\(4, 4\\) needs 16"):
        read_idx(truncated)


def test_load_from_root_gz_and_raw(tiny_idx, tmp_path):
    folder, arrays = tiny_idx
    splits = load_dataset("mnist", root=folder, val_fraction=0.2, normalize=False)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (40, 10, 20)
    assert splits.in_channels == 1 and splits.image_size == (28, 28) and splits.num_classes == 10
    x, y = splits.test.get_batch(torch.arange(20))
    assert x.shape == (20, 1, 28, 28)
    np.testing.assert_array_equal((x[:, 0] * 255).round().to(torch.uint8).numpy(), arrays["t10k-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(y.numpy(), arrays["t10k-labels-idx1-ubyte.gz"])
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, array in arrays.items():
        write_idx(raw / name.removesuffix(".gz"), array)
    again = load_dataset("mnist", root=raw, val_fraction=0.2, normalize=False)
    assert torch.equal(again.test.get_batch(torch.arange(20))[0], x)


def test_found_through_env_var_subfolder(tiny_idx, monkeypatch):
    folder, _ = tiny_idx
    (folder.parent / "fashion_mnist").symlink_to(folder)
    monkeypatch.setenv("SLIMKIT_DATA", str(folder.parent))
    monkeypatch.setattr(idx, "FASHION_MNIST_SYSTEM_DIR", str(folder.parent / "absent"))
    splits = load_dataset("fashion_mnist")
    assert len(splits.test) == 20 and splits.classes[0] == "T-shirt/top"


def test_missing_files_error_names_paths_and_remedy(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMKIT_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(idx, "FASHION_MNIST_SYSTEM_DIR", str(tmp_path / "system"))
    with pytest.raises(DataError) as err:
        load_dataset("fashion_mnist")
    message = str(err.value)
    for path in (tmp_path / "env", tmp_path / "env" / "fashion_mnist", tmp_path / "system"):
        assert str(path) in message
    # an explicit root is authoritative: only it is searched
    with pytest.raises(DataError) as err:
        load_dataset("fashion_mnist", root=tmp_path / "mine")
    assert str(tmp_path / "mine") in str(err.value) and str(tmp_path / "system") not in str(err.value)
    assert "train-images-idx3-ubyte" in message
    assert "apt-get install dataset-fashion-mnist" in message and "SLIMKIT_DATA" in message


def test_real_fashion_mnist_loads_quickly():
    if not (Path(idx.FASHION_MNIST_SYSTEM_DIR) / "t10k-labels-idx1-ubyte.gz").exists():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    start = time.perf_counter()
    splits = load_dataset("fashion_mnist", root=idx.FASHION_MNIST_SYSTEM_DIR, val_fraction=0.1)
    assert time.perf_counter() - start < 10  # about 0.5 s unloaded; generous for a shared 2-core machine
    assert (len(splits.train), len(splits.val), len(splits.test)) == (54_000, 6_000, 10_000)
    assert splits.train.base.images.shape == (60_000, 1, 28, 28)
    assert splits.test.base.images.shape == (10_000, 1, 28, 28)
    assert torch.equal(splits.test.labels.bincount(), torch.full((10,), 1000))
    x, _ = splits.train.get_batch(torch.arange(10_000))
    assert abs(x.mean().item()) < 0.02 and abs(x.std().item() - 1) < 0.02  # normalized by train statistics
