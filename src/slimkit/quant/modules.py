"""Quantized layers: a Conv/Linear whose weight (and optionally input) passes through a quantizer module.

The quantized layer subclasses the float one and shares its parameters, so ``isinstance(m, nn.Conv2d)`` still
holds, the state dict keeps its keys, and any weight quantizer (uniform, binary, ternary) plugs in the same way.
Users add layer types with :func:`register_quant_layer`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.core.registry import Registry


class QuantLayerMixin:
    """``weight_quant(weight)`` is used in place of the weight; ``input_quant(x)`` (if any) on the input."""

    weight_quant: nn.Module
    input_quant: nn.Module | None

    def quantized_weight(self) -> torch.Tensor:
        return self.weight_quant(self.weight)  # type: ignore[attr-defined]


class QuantConv1d(QuantLayerMixin, nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_quant is not None:
            x = self.input_quant(x)
        return self._conv_forward(x, self.quantized_weight(), self.bias)


class QuantConv2d(QuantLayerMixin, nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        if self.input_quant is not None:
            x = self.input_quant(x)
        return self._conv_forward(x, self.quantized_weight(), self.bias)


class QuantLinear(QuantLayerMixin, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_quant is not None:
            x = self.input_quant(x)
        return F.linear(x, self.quantized_weight(), self.bias)


#: float layer type -> its quantized twin (exact types: a subclass of Conv2d is not assumed to quantize alike)
QUANT_LAYERS: Registry[type[nn.Module]] = Registry("quantizable layer")
QUANT_LAYERS.add(nn.Conv1d, QuantConv1d)
QUANT_LAYERS.add(nn.Conv2d, QuantConv2d)
QUANT_LAYERS.add(nn.Linear, QuantLinear)
FLOAT_LAYERS: Registry[type[nn.Module]] = Registry("quantized layer")
for _float, _quant in QUANT_LAYERS.items():
    FLOAT_LAYERS.add(_quant, _float)


def register_quant_layer(float_cls: type[nn.Module]) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Declare ``quant_cls`` (a subclass of ``float_cls`` with the mixin) as the quantized form of ``float_cls``."""

    def add(quant_cls: type[nn.Module]) -> type[nn.Module]:
        QUANT_LAYERS[float_cls] = quant_cls
        FLOAT_LAYERS[quant_cls] = float_cls
        return quant_cls

    return add


def quantizable_types() -> tuple[type[nn.Module], ...]:
    return tuple(QUANT_LAYERS)


def to_quant_layer(module: nn.Module, weight_quant: nn.Module, input_quant: nn.Module | None) -> nn.Module:
    """A quantized twin of ``module`` sharing its parameters and buffers (no copy)."""
    cls = QUANT_LAYERS[type(module)]
    new = cls.__new__(cls)
    new.__dict__.update(module.__dict__)
    new.__dict__["_parameters"] = dict(module._parameters)
    new.__dict__["_buffers"] = dict(module._buffers)
    new.__dict__["_modules"] = dict(module._modules)
    new.weight_quant = weight_quant
    new.input_quant = input_quant
    return new


def to_float_layer(module: nn.Module, *, bake_weight: bool = True) -> nn.Module:
    """The plain layer back; with ``bake_weight`` its weight holds the quantized values (for export)."""
    cls = FLOAT_LAYERS[type(module)]
    new = cls.__new__(cls)
    new.__dict__.update(module.__dict__)
    new.__dict__["_parameters"] = dict(module._parameters)
    new.__dict__["_buffers"] = dict(module._buffers)
    modules = dict(module._modules)
    modules.pop("weight_quant", None)
    modules.pop("input_quant", None)
    new.__dict__["_modules"] = modules
    if bake_weight:
        with torch.no_grad():
            new._parameters["weight"] = nn.Parameter(module.quantized_weight().detach().clone())  # type: ignore[attr-defined]
    return new


def is_quant_layer(module: nn.Module) -> bool:
    return isinstance(module, QuantLayerMixin)
