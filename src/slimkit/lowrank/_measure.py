"""Per-layer input/output shapes and MACs of Linear and Conv2d layers, measured by running the example inputs.

The low-rank code needs spatial sizes (a 1x1 conv at input resolution costs differently from the core after a
stride) and honest MAC counts of the factor layers, so it measures both with forward hooks in one eval pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from slimkit.core.forward import training_mode
from slimkit.lowrank._base import Geometry

COUNTED = (nn.Linear, nn.Conv2d)


@dataclass(frozen=True)
class LayerShape:
    geometry: Geometry
    macs: int  # per sample


def _prod(values: tuple[int, ...]) -> int:
    total = 1
    for v in values:
        total *= v
    return total


def layer_macs(module: nn.Module, out_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one sample through ``module`` producing ``out_shape`` (batch dropped)."""
    outputs = _prod(out_shape)
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return outputs * (module.in_channels // module.groups) * kh * kw
    return outputs * module.in_features


@torch.no_grad()
def measure_layers(model: nn.Module, example_inputs: Sequence[torch.Tensor]) -> dict[str, LayerShape]:
    """Shapes and MACs of every Linear/Conv2d the example inputs reach, keyed by fqn (first call wins)."""
    found: dict[str, LayerShape] = {}
    handles = []

    def hook(fqn: str):
        def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if fqn in found or not args or not isinstance(output, torch.Tensor):
                return
            in_shape = tuple(args[0].shape[1:])
            out_shape = tuple(output.shape[1:])
            if isinstance(module, nn.Conv2d):  # channels first
                positions = (_prod(in_shape[1:]), _prod(out_shape[1:]))
            else:  # features last
                positions = (_prod(in_shape[:-1]), _prod(out_shape[:-1]))
            geometry = Geometry(in_shape, out_shape, *positions)
            found[fqn] = LayerShape(geometry, layer_macs(module, out_shape))

        return record

    for fqn, module in model.named_modules():
        if isinstance(module, COUNTED):
            handles.append(module.register_forward_hook(hook(fqn)))
    try:
        with training_mode(model, False):  # no BatchNorm statistics update from a measuring pass
            model(*example_inputs)
    finally:
        for handle in handles:
            handle.remove()
    return found


def macs_under(shapes: dict[str, LayerShape], prefix: str) -> int:
    """Summed MACs of the measured layers at ``prefix`` or inside it."""
    return sum(s.macs for fqn, s in shapes.items() if fqn == prefix or fqn.startswith(prefix + "."))
