import pytest
import torch
from torch import nn

from slimkit.core.errors import ConfigError
from slimkit.data import channel_stats, list_datasets, load_dataset


def test_registry_names_and_bad_names():
    assert set(list_datasets()) >= {"fashion_mnist", "mnist", "cifar10", "cifar100", "image_folder", "synthetic"}
    with pytest.raises(ConfigError, match="unknown dataset 'fmnist'.*fashion_mnist.*synthetic"):
        load_dataset("fmnist")
    with pytest.raises(ConfigError, match="dataset 'synthetic': unknown option 'num_sample'; its options: .*num_samples"):
        load_dataset("synthetic", num_sample=10)
    with pytest.raises(ConfigError, match="val_fraction"):
        load_dataset("synthetic", val_fraction=1.0)
    with pytest.raises(ConfigError, match="subset"):
        load_dataset("synthetic", subset=0)


def test_split_is_reproducible_by_seed_and_partitions_train():
    a = load_dataset("synthetic", num_samples=200, val_fraction=0.25, seed=3)
    b = load_dataset("synthetic", num_samples=200, val_fraction=0.25, seed=3)
    c = load_dataset("synthetic", num_samples=200, val_fraction=0.25, seed=4)
    assert torch.equal(a.train.indices, b.train.indices) and torch.equal(a.val.indices, b.val.indices)
    assert not torch.equal(a.val.indices.sort().values, c.val.indices.sort().values)
    assert (len(a.train), len(a.val)) == (150, 50)
    both = torch.cat([a.train.indices, a.val.indices]).sort().values
    assert torch.equal(both, torch.arange(200))  # disjoint and complete


def test_subset_keeps_seeded_first_samples_of_each_split():
    full = load_dataset("synthetic", num_samples=200, num_test=60, seed=1)
    small = load_dataset("synthetic", num_samples=200, num_test=60, seed=1, subset=15)
    assert (len(small.train), len(small.val), len(small.test)) == (15, 15, 15)
    assert torch.equal(small.train.indices, full.train.indices[:15])
    assert torch.equal(small.val.indices, full.val.indices[:15])
    again = load_dataset("synthetic", num_samples=200, num_test=60, seed=1, subset=15)
    assert torch.equal(again.test.indices, small.test.indices)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_get_batch_equals_stacked_getitem(split):
    splits = load_dataset("synthetic", num_samples=200, in_channels=3, image_size=(8, 6), subset=12)
    dataset = getattr(splits, split)
    indices = torch.tensor([3, 0, 7, 7, 11])
    x, y = dataset.get_batch(indices)
    items = [dataset[int(i)] for i in indices]
    assert x.dtype == torch.float32 and x.shape == (5, 3, 8, 6) and y.dtype == torch.int64
    assert torch.equal(x, torch.stack([item[0] for item in items]))
    assert torch.equal(y, torch.stack([item[1] for item in items]))
    base = dataset.base  # and both equal the definition, computed independently
    pixels = base.images[dataset.indices[indices]].double() / 255
    expected = (pixels - base.mean.double().view(1, 3, 1, 1)) / base.std.double().view(1, 3, 1, 1)
    assert torch.allclose(x.double(), expected, atol=1e-5)
    assert torch.equal(y, base.labels[dataset.indices[indices]])


def test_normalization_uses_train_statistics():
    splits = load_dataset("synthetic", num_samples=300, in_channels=3, val_fraction=0.0)
    x, _ = splits.train.get_batch(torch.arange(300))
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)
    raw = load_dataset("synthetic", num_samples=300, in_channels=3, val_fraction=0.0, normalize=False)
    pixels = raw.train.get_batch(torch.arange(300))[0]
    assert pixels.min() >= 0 and pixels.max() <= 1
    images = raw.train.base.images[raw.train.indices]
    assert torch.equal((pixels * 255).round().to(torch.uint8), images)


def test_channel_stats_exact():
    images = torch.tensor([0, 255, 0, 255], dtype=torch.uint8).view(4, 1, 1, 1)
    mean, std = channel_stats(images)
    assert mean.item() == pytest.approx(0.5) and std.item() == pytest.approx(0.5)


def test_synthetic_is_learnable_by_logistic_regression():
    torch.manual_seed(0)
    splits = load_dataset("synthetic", num_samples=600, num_test=300, noise=0.3, val_fraction=0.1)
    x, y = splits.train.get_batch(torch.arange(len(splits.train)))
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, splits.num_classes))
    xs, ys = splits.test.get_batch(torch.arange(len(splits.test)))
    assert (model(xs).argmax(1) == ys).float().mean().item() < 0.35  # untrained: near chance
    for _ in range(30):  # full-batch gradient descent on the cross-entropy
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.05 * p.grad
    for split in (splits.val, splits.test):
        xs, ys = split.get_batch(torch.arange(len(split)))
        accuracy = (model(xs).argmax(1) == ys).float().mean().item()
        assert accuracy > 0.95
    chance = load_dataset("synthetic", num_samples=300, noise=0.3, data_seed=7)  # other prototypes: no transfer
    xs, ys = chance.test.get_batch(torch.arange(len(chance.test)))
    assert (model(xs).argmax(1) == ys).float().mean().item() < 0.5


def test_synthetic_options_shape_the_data():
    splits = load_dataset("synthetic", num_samples=40, num_test=8, in_channels=3, num_classes=4, image_size=16)
    assert splits.in_channels == 3 and splits.num_classes == 4 and splits.image_size == (16, 16)
    assert len(splits.train) + len(splits.val) == 40 and len(splits.test) == 8
    assert splits.example_inputs(2).shape == (2, 3, 16, 16)
    with pytest.raises(ConfigError, match="num_classes >= 2"):
        load_dataset("synthetic", num_classes=1)


def test_make_loader_is_exported_lazily():
    import importlib.util

    import slimkit.data

    if importlib.util.find_spec("slimkit.data.loader") is None:
        with pytest.raises(ModuleNotFoundError):
            slimkit.data.make_loader  # noqa: B018
    else:
        from slimkit.data.loader import make_loader

        assert slimkit.data.make_loader is make_loader


def test_augmented_train_batches_are_shifted_or_flipped_originals():
    splits = load_dataset("synthetic", num_samples=40, image_size=8, augment="crop_flip", padding=2, normalize=False)
    plain = load_dataset("synthetic", num_samples=40, image_size=8, normalize=False)
    indices = torch.arange(len(splits.train))
    torch.manual_seed(0)
    x, y = splits.train.get_batch(indices)
    torch.manual_seed(0)
    assert torch.equal(splits.train.get_batch(indices)[0], x)  # reproducible under the global seed
    originals, y_plain = plain.train.get_batch(indices)
    assert torch.equal(y, y_plain)
    padded = torch.nn.functional.pad(originals, (2, 2, 2, 2))
    candidates = torch.stack(
        [padded[:, :, i : i + 8, j : j + 8] for i in range(5) for j in range(5)]
    )  # (25, B, 1, 8, 8): every shift
    candidates = torch.cat([candidates, candidates.flip(-1)])  # and its mirror
    matches = (candidates == x.unsqueeze(0)).flatten(2).all(2)  # (50, B)
    assert matches.any(0).all()  # each augmented image is a shift (and maybe a flip) of its original
    assert not matches[12].all()  # ... and not all are the unshifted, unflipped original
    for split in (splits.val, splits.test):  # evaluation splits stay untouched
        idx = torch.arange(len(split))
        assert torch.equal(split.get_batch(idx)[0], getattr(plain, "val" if split is splits.val else "test").get_batch(idx)[0])
    with pytest.raises(ConfigError, match="augment"):
        load_dataset("synthetic", augment="rotate")
