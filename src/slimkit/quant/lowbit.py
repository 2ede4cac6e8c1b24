"""Binary and ternary weights: the handlers behind ``quantize(model, BinaryConfig(...) | TernaryConfig(...))``.

The model is left ready to train (these methods are trained, not calibrated): each targeted layer's weight passes
through its :mod:`slimkit.quant.binary` quantizer. First and last layers stay in floating point by default.
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.core.errors import ConfigError
from slimkit.core.modules import FilterFn, set_submodule
from slimkit.quant.api import check_no_quant_layers, register_quantize_handler, select_layers, storage_bytes
from slimkit.quant.binary import BinaryWeight, SignActivation, TernaryWeight, TTQWeight
from slimkit.quant.config import BinaryConfig, BinaryMethod, TernaryConfig, TernaryMethod
from slimkit.quant.fold import fold_batchnorm
from slimkit.quant.modules import to_quant_layer
from slimkit.quant.report import LayerQuant, QuantReport


def _apply(
    model: nn.Module, config: BinaryConfig | TernaryConfig, filter_fn: FilterFn | None, make: object, method: str
) -> QuantReport:
    check_no_quant_layers(model)
    folded = fold_batchnorm(model) if config.fold_bn else []
    chosen, skipped = select_layers(
        model, filter_fn=filter_fn, ignore=config.ignore, keep_first_last=config.keep_first_last
    )
    if not chosen:
        raise ConfigError(f"quantize ({method}): no Conv/Linear layer left after filter_fn/ignore/keep_first_last")
    layers, storage = [], {}
    for fqn, module in chosen:
        weight_q, input_q, bits, extra = make(module)  # type: ignore[operator]
        set_submodule(model, fqn, to_quant_layer(module, weight_q, input_q))
        storage[fqn] = (bits, extra)
        bias_bytes = 4 * module.bias.numel() if module.bias is not None else 0
        n = module.weight.numel()
        layers.append(LayerQuant(fqn, type(module).__name__, bits, 1 if input_q is not None else None, n,
                                 (n * bits + 7) // 8 + extra + bias_bytes))
    return QuantReport(method=method, layers=layers, skipped=skipped, folded_bn=folded,
                       size_bytes=storage_bytes(model, storage))


@register_quantize_handler(BinaryConfig, name=[m.value for m in BinaryMethod], name_field="method")
def quantize_binary(
    model: nn.Module, config: BinaryConfig, calibration: list[torch.Tensor], filter_fn: FilterFn | None
) -> QuantReport:
    scaled = config.method is not BinaryMethod.BINARY_CONNECT

    def make(module: nn.Module) -> tuple[nn.Module, nn.Module | None, int, int]:
        input_q = SignActivation() if config.method is BinaryMethod.XNOR else None
        return BinaryWeight(scaled=scaled), input_q, 1, 4 * module.weight.shape[0] if scaled else 0

    return _apply(model, config, filter_fn, make, config.method.value)


@register_quantize_handler(TernaryConfig, name=[m.value for m in TernaryMethod], name_field="method")
def quantize_ternary(
    model: nn.Module, config: TernaryConfig, calibration: list[torch.Tensor], filter_fn: FilterFn | None
) -> QuantReport:
    assert config.threshold is not None
    threshold = config.threshold

    def make(module: nn.Module) -> tuple[nn.Module, nn.Module | None, int, int]:
        if config.method is TernaryMethod.TTQ:
            return TTQWeight(module.weight.detach(), threshold), None, 2, 8
        return TernaryWeight(threshold), None, 2, 4 * module.weight.shape[0]

    return _apply(model, config, filter_fn, make, config.method.value)
