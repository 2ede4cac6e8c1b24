"""Uniform integer quantization (PTQ and QAT): the handler behind ``quantize(model, QuantConfig(...))``.

Steps: fold BatchNorm, swap each targeted conv/linear for its quantized twin (weight fake-quant with per-channel
or per-tensor scales; input fake-quant per tensor), run the calibration batches through the observers, freeze the
ranges. In QAT mode the model is then trained as usual: weights re-derive their grid each step, or with
``learn_step`` every scale is an LSQ parameter.
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.core.errors import ConfigError, DataError, GraphError
from slimkit.core.forward import training_mode
from slimkit.core.modules import FilterFn, set_submodule
from slimkit.quant.api import check_no_quant_layers, register_quantize_handler, select_layers, storage_bytes
from slimkit.quant.config import QuantConfig, QuantMode
from slimkit.quant.fake_quant import FakeQuantize
from slimkit.quant.fold import fold_batchnorm
from slimkit.quant.modules import to_quant_layer
from slimkit.quant.report import LayerQuant, QuantReport


def _weight_quantizer(config: QuantConfig, bits: int) -> FakeQuantize:
    return FakeQuantize(
        bits,
        symmetric=config.weight_symmetric,
        axis=config.weight_axis,
        observer=config.weight_observer,
        learn_step=config.learn_step,
        track_weights=config.mode is QuantMode.QAT and not config.learn_step,
        percentile=config.percentile,
    )


def _input_quantizer(config: QuantConfig) -> FakeQuantize | None:
    if config.activation_bits is None:
        return None
    return FakeQuantize(
        config.activation_bits,
        symmetric=config.activation_symmetric,
        axis=None,
        observer=config.observer,
        learn_step=config.learn_step,
        percentile=config.percentile,
    )


@torch.no_grad()
def calibrate(model: nn.Module, inputs: list[torch.Tensor], quantizers: list[FakeQuantize]) -> None:
    """Run ``inputs`` through ``model`` with ``quantizers`` observing, then freeze their ranges."""
    for q in quantizers:
        q.observe()
    with training_mode(model, False):
        for x in inputs:
            model(x)
    names = {id(m): fqn for fqn, m in model.named_modules()}
    for q in quantizers:
        try:
            q.freeze()
        except ValueError as err:
            layer = names.get(id(q), "?").rsplit(".input_quant", 1)[0]
            raise GraphError(
                f"{layer}: never ran on the calibration data, so its input range is unknown (its parent may read "
                "its weight directly, as nn.TransformerEncoderLayer's fused fast path does); ignore it "
                f"(ignore=[...]) or quantize weights only (activation_bits=None) ({err})"
            ) from None


@register_quantize_handler(QuantConfig, name="uniform")
def quantize_uniform(
    model: nn.Module, config: QuantConfig, calibration: list[torch.Tensor], filter_fn: FilterFn | None
) -> QuantReport:
    check_no_quant_layers(model)
    with training_mode(model, False):  # BN folding and calibration need inference-mode statistics
        folded = fold_batchnorm(model) if config.fold_bn else []
        chosen, skipped = select_layers(
            model, filter_fn=filter_fn, ignore=config.ignore, keep_first_last=config.keep_first_last
        )
        if not chosen:
            raise ConfigError("quantize: no Conv/Linear layer left to quantize after filter_fn/ignore/keep_first_last")
        unknown = sorted(set(config.layer_bits) - {fqn for fqn, _ in chosen})
        if unknown:
            raise ConfigError(f"layer_bits: {unknown[0]!r} is not a quantized layer of {type(model).__name__}")
        if config.activation_bits is not None and not calibration:
            raise DataError(
                f"quantize: activation_bits={config.activation_bits} needs calibration_data (a few batches) to set ranges; "
                "pass activation_bits=None for weight-only quantization"
            )

        inputs_q: list[FakeQuantize] = []
        layers: list[LayerQuant] = []
        storage: dict[str, tuple[int, int]] = {}
        for fqn, module in chosen:
            bits = config.layer_bits.get(fqn, config.weight_bits)
            weight_q = _weight_quantizer(config, bits)
            weight_q.calibrate_from(module.weight.detach())
            input_q = _input_quantizer(config)
            if input_q is not None:
                inputs_q.append(input_q)
            set_submodule(model, fqn, to_quant_layer(module, weight_q, input_q))
            channels = weight_q.scale.numel()
            extra = channels * (4 + (0 if config.weight_symmetric else 1)) + (5 if input_q is not None else 0)
            storage[fqn] = (bits, extra)
            bias_bytes = 4 * module.bias.numel() if module.bias is not None else 0
            layers.append(
                LayerQuant(
                    fqn, type(module).__name__, bits, config.activation_bits, module.weight.numel(),
                    (module.weight.numel() * bits + 7) // 8 + extra + bias_bytes,
                )
            )
        if inputs_q:
            calibrate(model, calibration, inputs_q)
    return QuantReport(
        method=config.mode.value,
        layers=layers,
        skipped=skipped,
        folded_bn=folded,
        size_bytes=storage_bytes(model, storage),
        calibration_batches=len(calibration),
    )
