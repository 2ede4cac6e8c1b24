import os
import pickle

import numpy as np
import pytest
import torch

from slimkit.core.errors import DataError
from slimkit.data import load_dataset
from slimkit.data.cifar import load_pickle


def _write(path, obj, protocol=2):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def _cifar10(folder, per_batch=4):
    """Fake cifar-10-batches-py with the real files' structure: bytes keys, (N, 3072) uint8 rows, int lists."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        _write(folder / name, {b"batch_label": b"x", b"data": data, b"labels": labels, b"filenames": [b"a.png"]})
        batches[name] = (data, labels)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    _write(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072})
    return batches


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_loads_planes_as_channels(tmp_path):
    batches = _cifar10(tmp_path / "cifar-10-batches-py")
    splits = load_dataset("cifar10", root=tmp_path, val_fraction=0.0, normalize=False)
    assert splits.val is None and len(splits.train) == 20 and len(splits.test) == 4
    assert splits.in_channels == 3 and splits.image_size == (32, 32) and splits.classes[9] == "truck"
    images = splits.train.base.images
    data, labels = batches["data_batch_2"]
    first = images[4]  # the first image of the second batch
    assert torch.equal(first[0].reshape(-1), torch.from_numpy(data[0, :1024]))  # red plane
    assert torch.equal(first[2].reshape(-1), torch.from_numpy(data[0, 2048:]))  # blue plane
    assert splits.train.base.labels[4:8].tolist() == labels


def test_cifar100_fine_and_coarse(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    data = np.zeros((6, 3072), np.uint8)
    for name in ("train", "test"):
        _write(folder / name, {b"data": data, b"fine_labels": [0, 99, 5, 6, 7, 8], b"coarse_labels": [0, 19, 1, 2, 3, 4]})
    fine = load_dataset("cifar100", root=tmp_path, val_fraction=0)
    coarse = load_dataset("cifar100", root=tmp_path, val_fraction=0, labels="coarse")
    assert fine.num_classes == 100 and coarse.num_classes == 20
    assert fine.test.labels.tolist()[:2] == [0, 99] and coarse.test.labels.tolist()[:2] == [0, 19]


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_restricted_unpickler_refuses_code(tmp_path, protocol):
    marker = tmp_path / "pwned"
    evil = tmp_path / "data_batch_1"
    _write(evil, {b"data": _Evil(marker)}, protocol)
    with pytest.raises(DataError, match="data_batch_1.*refused global (posix|os|nt).system"):
        load_pickle(evil)
    assert not marker.exists()


def test_malicious_batch_fails_load_dataset_without_running(tmp_path):
    _cifar10(tmp_path / "cifar-10-batches-py")
    marker = tmp_path / "pwned"
    _write(tmp_path / "cifar-10-batches-py" / "data_batch_3", {b"data": _Evil(marker), b"labels": []})
    with pytest.raises(DataError, match="data_batch_3"):
        load_dataset("cifar10", root=tmp_path)
    assert not marker.exists()


def test_restricted_unpickler_refuses_eval_and_accepts_arrays(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(b"cbuiltins\neval\n(V__import__('os')\ntR.")  # eval("__import__('os')")
    with pytest.raises(DataError, match="refused global builtins.eval"):
        load_pickle(path)
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for protocol in (2, 5):
        _write(path, {b"data": array, b"labels": [1, 2, 3]}, protocol)
        loaded = load_pickle(path)
        np.testing.assert_array_equal(loaded[b"data"], array)


def test_missing_cifar_names_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("SLIMKIT_DATA", raising=False)
    with pytest.raises(DataError, match=f"cifar10: files not found.*Searched: {tmp_path}.*cs.toronto.edu"):
        load_dataset("cifar10", root=tmp_path)
