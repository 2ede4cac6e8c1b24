"""Every zoo model profiles fully: no operator without a rule, rows add up, conv+linear MACs agree with fvcore."""

from __future__ import annotations

import pytest
import torch

import slimkit
from slimkit.core.modules import count_params
from slimkit.models import create_model, list_models


def _model_and_input(name: str):
    size = 28 if name.startswith("lenet") else 32
    model = create_model(name, in_channels=3, num_classes=10, width=0.25 if not name.startswith("lenet") else 1.0)
    return model, torch.randn(1, 3, size, size)


FAST = {"lenet5", "lenet300", "resnet20", "vgg11_bn", "mobilenetv2_imagenet"}  # the rest run with -m slow
ZOO = [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in list_models()]


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_profiles_completely(name):
    model, x = _model_and_input(name)
    report = slimkit.profile(model, x)
    assert report.uncounted_ops == {}
    assert report.params == count_params(model)
    assert report.macs > 0 and report.flops > 2 * report.macs
    assert sum(r.macs for r in report.layers) == report.macs
    assert sum(r.flops for r in report.layers) == report.flops
    assert sum(r.params for r in report.layers) == report.params
    assert report.peak_activation_bytes >= x.numel() * 4


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_zoo_conv_linear_macs_agree_with_fvcore(name):
    fvcore_nn = pytest.importorskip("fvcore.nn")
    model, x = _model_and_input(name)
    report = slimkit.profile(model, x)
    counter = fvcore_nn.FlopCountAnalysis(model.eval(), (x,))
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = counter.by_operator()
    ours = sum(report.ops.get(op, {}).get("macs", 0) for op in ("convolution", "addmm", "mm"))
    assert ours == by_op.get("conv", 0) + by_op.get("linear", 0) + by_op.get("addmm", 0)
