"""Post-training quantization and QAT through ``quantize``."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import slimkit
from slimkit.core.config import parse_config
from slimkit.core.errors import ConfigError, DataError
from slimkit.quant import Int8Config, PerTensor, QuantConfig, quantize
from slimkit.quant.fake_quant import FakeQuantize
from slimkit.quant.modules import is_quant_layer


def _rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).pow(2).sum().detach() / ref.pow(2).sum().detach())


def test_int8_output_close_to_fp32(cnn: nn.Module, images: torch.Tensor, batches: list[torch.Tensor]) -> None:
    ref = cnn(images)
    report = quantize(cnn, Int8Config(), calibration_data=batches)
    out = cnn(images)
    assert _rel_err(out, ref) < 1e-3
    assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.9
    assert [layer.fqn for layer in report.layers] == ["0", "3", "8", "10"]
    assert report.folded_bn == ["1", "4"]
    assert report.calibration_batches == 2
    assert 3.5 < report.size_ratio < 4.0  # 8-bit weights, fp32 biases and scales


def test_bits_lower_error_higher(cnn: nn.Module, images: torch.Tensor, batches: list[torch.Tensor]) -> None:
    ref = cnn(images)
    errors = []
    for bits in (8, 4, 2):
        model = copy.deepcopy(cnn)
        quantize(model, QuantConfig(weight_bits=bits, activation_bits=bits), calibration_data=batches)
        errors.append(_rel_err(model(images), ref))
    assert errors[0] < errors[1] < errors[2]


def test_exported_verb_and_observers(cnn: nn.Module, images: torch.Tensor, batches: list[torch.Tensor]) -> None:
    ref = cnn(images)
    for observer in ("moving_average", "percentile", "mse"):
        model = copy.deepcopy(cnn)
        slimkit.quantize(model, QuantConfig(observer=observer, granularity=PerTensor()), calibration_data=batches)
        assert model[0].input_quant.observer_kind.value == observer
        assert model[0].weight_quant.axis is None
        assert _rel_err(model(images), ref) < 1e-2


def test_weight_only_needs_no_calibration(cnn: nn.Module, images: torch.Tensor) -> None:
    ref = cnn(images)
    quantize(cnn, QuantConfig(weight_bits=8, activation_bits=None))
    assert cnn[0].input_quant is None
    assert _rel_err(cnn(images), ref) < 1e-3


def test_missing_calibration_is_refused_and_model_untouched(cnn: nn.Module, images: torch.Tensor) -> None:
    ref = cnn(images)
    with pytest.raises(DataError, match="needs calibration_data"):
        quantize(cnn, Int8Config())
    assert isinstance(cnn[1], nn.BatchNorm2d)  # folding was undone
    assert not any(is_quant_layer(m) for m in cnn.modules())
    torch.testing.assert_close(cnn(images), ref)


def test_bad_layer_bits_names_the_layer(cnn: nn.Module, batches: list[torch.Tensor]) -> None:
    with pytest.raises(ConfigError, match="'features.9' is not a quantized layer"):
        quantize(cnn, QuantConfig(layer_bits={"features.9": 4}), calibration_data=batches)


def test_keep_first_last_and_filter_fn(cnn: nn.Module, batches: list[torch.Tensor]) -> None:
    report = quantize(cnn, QuantConfig(keep_first_last=True), calibration_data=batches,
                      filter_fn=lambda m, fqn: not isinstance(m, nn.Linear) or fqn != "8")
    assert [layer.fqn for layer in report.layers] == ["3"]
    assert set(report.skipped) == {"0", "10", "8"}
    assert not is_quant_layer(cnn[0]) and is_quant_layer(cnn[3])


def test_layer_bits_override(cnn: nn.Module, batches: list[torch.Tensor]) -> None:
    report = quantize(cnn, QuantConfig(layer_bits={"3": 4}), calibration_data=batches)
    assert report.layer_bits == {"0": 8, "3": 4, "8": 8, "10": 8}
    codes = torch.round(cnn[3].quantized_weight() / cnn[3].weight_quant.scale.reshape(-1, 1, 1, 1))
    assert codes.abs().max() <= 7


def test_config_parsing_errors() -> None:
    with pytest.raises(ConfigError, match="weight_bits must be in"):
        parse_config(QuantConfig, {"weight_bits": 1})
    with pytest.raises(ConfigError, match="learn_step"):
        parse_config(QuantConfig, {"learn_step": True})
    with pytest.raises(ValueError, match="Int8Config is 8-bit"):
        Int8Config(weight_bits=4)


def test_qat_ste_gradients_flow(cnn: nn.Module, images: torch.Tensor, batches: list[torch.Tensor]) -> None:
    quantize(cnn, QuantConfig(weight_bits=4, activation_bits=4, mode="qat"), calibration_data=batches)
    cnn.train()
    loss = nn.functional.cross_entropy(cnn(images), torch.arange(32) % 10)
    loss.backward()
    for layer in (cnn[0], cnn[3], cnn[8], cnn[10]):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_qat_training_lowers_loss(cnn: nn.Module, images: torch.Tensor, batches: list[torch.Tensor]) -> None:
    quantize(cnn, QuantConfig(weight_bits=4, activation_bits=8, mode="qat", learn_step=True),
             calibration_data=batches)
    targets = torch.arange(32) % 10
    steps = [m.step for m in cnn.modules() if isinstance(m, FakeQuantize)]
    assert all(s is not None for s in steps)
    before = [s.detach().clone() for s in steps]
    optimizer = torch.optim.Adam(cnn.parameters(), lr=1e-2)
    cnn.train()
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(cnn(images), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert any(not torch.equal(b, s.detach()) for b, s in zip(before, steps))  # LSQ steps were updated
