import numpy as np
import pytest
import torch
from PIL import Image

from slimkit.core.errors import ConfigError, DataError
from slimkit.data import load_dataset


def _save(path, array, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


def test_flat_layout_split_by_test_fraction(tmp_path):
    for c, name in enumerate(["cat", "dog", "eel"]):
        for i in range(5):
            _save(tmp_path / name / f"{i}.png", np.full((6, 4, 3), 40 * c + i, np.uint8), "RGB")
    splits = load_dataset("image_folder", root=tmp_path, test_fraction=0.2, val_fraction=0.0, normalize=False)
    assert splits.classes == ("cat", "dog", "eel") and splits.in_channels == 3 and splits.image_size == (6, 4)
    assert len(splits.train) == 12 and len(splits.test) == 3
    x, y = splits.train.get_batch(torch.arange(12))
    pixel = (x[:, 0, 0, 0] * 255).round().long()
    assert torch.equal(pixel // 40, y)  # each image's value encodes its class folder


def test_train_test_layout_grayscale_and_resize(tmp_path):
    for split, count in (("train", 4), ("test", 2)):
        for name in ("a", "b"):
            for i in range(count):
                size = (10, 10) if i % 2 else (20, 20)  # mixed sizes are resized to image_size
                _save(tmp_path / split / name / f"{i}.png", np.full(size, 200 if name == "b" else 10, np.uint8), "L")
    splits = load_dataset("image_folder", root=tmp_path, image_size=8, val_fraction=0.25, normalize=False)
    assert splits.in_channels == 1 and splits.image_size == (8, 8)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 2, 4)
    x, y = splits.test.get_batch(torch.arange(4))
    assert y.tolist() == [0, 0, 1, 1]
    assert torch.equal((x * 255).round()[:, 0, 0, 0], torch.tensor([10.0, 10.0, 200.0, 200.0]))


def test_errors_name_the_folder(tmp_path):
    with pytest.raises(ConfigError, match="root is required"):
        load_dataset("image_folder")
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset("image_folder", root=tmp_path / "nope")
    (tmp_path / "only").mkdir()
    with pytest.raises(DataError, match="at least two class subfolders"):
        load_dataset("image_folder", root=tmp_path)
