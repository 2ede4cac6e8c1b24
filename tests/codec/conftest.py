import pytest
import torch
from torch import nn

from slimkit.models._registry import MODELS


def _mlp(*, in_features: int = 64, hidden: int = 32, num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def _cnn(*, num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=2, padding=1),
        nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, num_classes),
    )


@pytest.fixture(autouse=True, scope="module")
def codec_test_models():
    """Register the tiny test models only while a codec test runs, so the zoo-wide tests never see them."""
    MODELS.add("codec_test_mlp", _mlp, overwrite=True)
    MODELS.add("codec_test_cnn", _cnn, overwrite=True)
    yield
    MODELS.remove("codec_test_mlp")
    MODELS.remove("codec_test_cnn")


def _prune(model: nn.Module, ratio: float) -> None:
    """Zero the smallest-magnitude fraction of every weight matrix (tests only)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.dim() > 1:
                k = int(p.numel() * ratio)
                if k:
                    cut = p.abs().flatten().kthvalue(k).values
                    p[p.abs() <= cut] = 0


@pytest.fixture
def seeded():
    torch.manual_seed(0)


@pytest.fixture
def prune_():
    """``prune_(model, ratio)``: zero the smallest weights of every matrix."""
    return _prune


@pytest.fixture(scope="module")
def prune_module():
    return _prune
