import pytest
import torch
from torch import nn

torch.set_num_threads(1)


def cbr(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def _small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(cbr(1, 8), nn.MaxPool2d(2), cbr(8, 12), nn.MaxPool2d(2), cbr(12, 12),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 4))


@pytest.fixture(scope="session")
def splits():
    from slimkit.data import load_dataset

    return load_dataset("synthetic", num_samples=320, num_classes=4, image_size=8, noise=0.2, val_fraction=0.25)


@pytest.fixture(scope="session")
def trained(splits):
    """A small CNN trained to high accuracy on the synthetic set (shared; tests copy it)."""
    from slimkit.train import fit

    model = _small_cnn()
    fit(model, splits.train, {"epochs": 4, "batch_size": 32, "lr": 0.05, "progress": False, "device": "cpu"})
    return model.eval()


def _batches(dataset, n: int = 2, size: int = 64):
    xs = torch.stack([dataset[i][0] for i in range(n * size)])
    ys = torch.tensor([int(dataset[i][1]) for i in range(n * size)])
    return [(xs[i * size:(i + 1) * size], ys[i * size:(i + 1) * size]) for i in range(n)]


@pytest.fixture(scope="session")
def small_cnn():
    """Factory of a 3-conv BN CNN for 1x8x8 inputs and 4 classes."""
    return _small_cnn


@pytest.fixture(scope="session")
def batches():
    """Factory: the first n batches of a dataset as (x, y) tensors."""
    return _batches
