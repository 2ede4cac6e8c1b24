"""Item 7: the data-driven criteria of the engine (taylor, apoz) fed with calibration batches."""

import copy

import pytest
import torch

import slimkit
from slimkit.core.errors import ConfigError


def _dead(model, layer: int, idx: list[int]):
    """Make channels ``idx`` of conv block ``layer`` output exactly 0 after ReLU (gamma 0, beta negative)."""
    bn = model[layer][1]
    with torch.no_grad():
        bn.weight[idx] = 0.0
        bn.bias[idx] = -1.0
    return model


def test_taylor_with_calibration_batches_removes_zero_effect_channels_first(trained, splits, batches):
    model = _dead(copy.deepcopy(trained), 2, [1, 5, 9])
    calib = batches(splits.train, 2, 32)
    x = calib[0][0][:4]
    before = model(x)
    plan = slimkit.plan_pruning(model, x[:1], ratio=0.0, scope="local", ratios={"2.0": 0.25}, importance="taylor",
                                importance_data=calib)
    assert sorted(plan.indices("2.0").tolist()) == [1, 5, 9]
    plan.apply()
    torch.testing.assert_close(model(x), before, atol=1e-5, rtol=1e-5)  # they had no effect: outputs unchanged


def test_taylor_needs_calibration_data_and_prunes_with_it(trained, splits, batches):
    a = slimkit.plan_pruning(copy.deepcopy(trained), torch.randn(1, 1, 8, 8), ratio=0.5, scope="local",
                             importance="taylor", importance_data=batches(splits.train, 1, 32))
    assert a.report.macs_after < a.report.macs_before
    with pytest.raises(ConfigError, match="taylor"):
        slimkit.plan_pruning(copy.deepcopy(trained), torch.randn(1, 1, 8, 8), importance="taylor")


def test_apoz_on_a_calibration_batch_removes_always_zero_channels(trained, splits, batches):
    model = _dead(copy.deepcopy(trained), 4, [0, 3, 6])
    x = batches(splits.train, 1, 64)[0][0]
    before = model(x)
    plan = slimkit.plan_pruning(model, x, ratio=0.0, scope="local", ratios={"4.0": 0.25}, importance="apoz")
    assert sorted(plan.indices("4.0").tolist()) == [0, 3, 6]
    plan.apply()
    torch.testing.assert_close(model(x), before, atol=1e-5, rtol=1e-5)
