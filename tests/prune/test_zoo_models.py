"""Structured pruning over every model of the slimkit zoo (``slimkit.models.list_models()``)."""

from __future__ import annotations

import pytest
import torch

import slimkit
from slimkit.testing import check_finetune, check_prune_equivalence

MODELS = slimkit.list_models()


def zoo_model(name):
    torch.manual_seed(0)
    model = slimkit.create_model(name, in_channels=3, num_classes=10).eval()
    for size in (32, 28):
        x = (torch.randn(2, 3, size, size),)
        try:
            with torch.no_grad():
                model(*x)
            return model, x
        except RuntimeError:
            continue
    pytest.skip(f"{name}: no 28x28 or 32x32 input fits")


@pytest.mark.parametrize("name", MODELS)
def test_zoo_ratio_zero_and_equivalence(name):
    model, x = zoo_model(name)
    with torch.no_grad():
        before = model(*x)
    slimkit.prune_channels(model, x, ratio=0.0)
    with torch.no_grad():
        assert torch.equal(before, model(*x))
    assert check_prune_equivalence(model, x, fraction=0.3) > 0


HEAVY = {"resnet50", "vgg16_bn", "densenet40"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in MODELS])
def test_zoo_pruned_model_saves_loads_and_finetunes(name, tmp_path):
    model, x = zoo_model(name)
    report = slimkit.prune_channels(model, x, macs_reduction=2.0, round_to=4)
    assert report.macs_reduction >= 2.0
    path = slimkit.save_model(model, tmp_path / f"{name}.pt")
    loaded = slimkit.load_model(path).eval()
    with torch.no_grad():
        assert torch.equal(model(*x), loaded(*x))
    assert repr(loaded) == repr(model)
    check_finetune(loaded, x, steps=2)
