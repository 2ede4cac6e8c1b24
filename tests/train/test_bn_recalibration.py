"""recalibrate_bn: running statistics become the exact average over the data, nothing else changes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import slimkit
from slimkit.core.errors import DataError
from slimkit.train import recalibrate_bn


def test_statistics_equal_the_data_average(blobs, mlp):
    model = mlp()
    bn = model[1]
    bn.running_mean.fill_(7.0)
    bn.running_var.fill_(9.0)
    weights = copy.deepcopy(model.state_dict())
    used = recalibrate_bn(model, blobs, batches=100, batch_size=64)
    assert used == len(blobs)
    hidden = model[0](blobs.x)
    # four equal batches: the cumulative average of the batch means is the mean over all samples
    torch.testing.assert_close(bn.running_mean, hidden.mean(dim=0), atol=1e-5, rtol=1e-5)
    recalibrate_bn(model, blobs, batches=1, batch_size=len(blobs))
    torch.testing.assert_close(bn.running_var, hidden.var(dim=0, unbiased=True), atol=1e-5, rtol=1e-5)
    for name, value in model.state_dict().items():
        if not name.startswith("1.running") and not name.endswith("num_batches_tracked"):
            assert torch.equal(value, weights[name]), name
    assert bn.momentum == 0.1


def test_batches_limit_the_samples_and_flags_are_restored(blobs, mlp):
    model = mlp().eval()
    model[1].train()  # a user's mixed flags survive
    assert recalibrate_bn(model, blobs, batches=2, batch_size=32) == 64
    assert not model.training and model[1].training and not model[3].training


def test_recovers_accuracy_after_channels_are_removed():
    torch.manual_seed(0)
    data = slimkit.load_dataset("synthetic", num_samples=512, seed=0, image_size=(12, 12), num_classes=4)
    model = nn.Sequential(
        nn.Conv2d(data.in_channels, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )
    slimkit.fit(model, data.train, {"epochs": 3, "lr": 0.05, "progress": False, "device": "cpu"})
    slimkit.prune_channels(model, torch.zeros(1, data.in_channels, 12, 12), ratio=0.5, importance="random")
    stale = slimkit.evaluate(model, data.train)["loss"]
    recalibrate_bn(model, data.train, batches=10)
    assert slimkit.evaluate(model, data.train)["loss"] < stale


def test_a_list_of_batches_is_used_as_is(blobs, mlp):
    model = mlp()
    inputs = [blobs.x[:64], blobs.x[64:128]]
    assert recalibrate_bn(model, inputs, batches=5) == 128
    torch.testing.assert_close(model[1].running_mean, model[0](blobs.x[:128]).mean(0), atol=1e-5, rtol=1e-5)
    pairs = [(blobs.x[:32], blobs.y[:32])]
    assert recalibrate_bn(model, pairs) == 32


def test_model_without_batchnorm_is_untouched(blobs):
    model = nn.Linear(8, 3)
    assert recalibrate_bn(model, blobs) == 0


def test_empty_data_is_refused_and_statistics_restored(mlp):
    model = mlp()
    before = model[1].running_mean.clone()
    model[1].running_mean.fill_(3.0)
    before = model[1].running_mean.clone()
    with pytest.raises(DataError, match="no batch"):
        recalibrate_bn(model, torch.utils.data.TensorDataset(torch.zeros(0, 8), torch.zeros(0).long()))
    assert torch.equal(model[1].running_mean, before)
    with pytest.raises(ValueError, match="batches"):
        recalibrate_bn(model, [], batches=0)
    with pytest.raises(DataError, match="no batch"):
        recalibrate_bn(model, [])


def test_public_verb():
    assert slimkit.recalibrate_bn is recalibrate_bn
