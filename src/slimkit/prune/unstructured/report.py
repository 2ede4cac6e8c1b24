"""How sparse a model is, per layer and overall: the numbers every unstructured method reports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from slimkit.core.modules import FilterFn, count_params
from slimkit.prune.unstructured.masks import PRUNABLE_TYPES, get_masks, prunable_weights


@dataclass(frozen=True)
class LayerSparsity:
    """One weight tensor: ``name`` is the parameter (``fc1.weight``), ``nonzero`` the kept entries."""

    name: str
    shape: tuple[int, ...]
    numel: int
    nonzero: int

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / self.numel if self.numel else 0.0


@dataclass(frozen=True)
class SparsityReport:
    """Sparsity of the prunable weights, per layer and overall, and of the whole model.

    Attributes:
        layers: one entry per prunable weight, in module order.
        params: all parameters of the model (weights, biases, norms), counted once.
        nonzero_params: the nonzero ones among them.
    """

    layers: tuple[LayerSparsity, ...]
    params: int
    nonzero_params: int

    @property
    def numel(self) -> int:
        return sum(layer.numel for layer in self.layers)

    @property
    def nonzero(self) -> int:
        return sum(layer.nonzero for layer in self.layers)

    @property
    def sparsity(self) -> float:
        """Fraction of the prunable weights that are pruned."""
        return 1.0 - self.nonzero / self.numel if self.numel else 0.0

    @property
    def compression(self) -> float:
        """How many times fewer nonzero prunable weights than dense (``inf`` when all are pruned)."""
        return self.numel / self.nonzero if self.nonzero else float("inf")

    @property
    def per_layer(self) -> dict[str, float]:
        return {layer.name: layer.sparsity for layer in self.layers}

    def table(self) -> str:
        rows = [f"{'weight':<32} {'shape':<20} {'nonzero':>10} {'total':>10} {'sparsity':>9}"]
        for layer in self.layers:
            rows.append(
                f"{layer.name:<32} {str(tuple(layer.shape)):<20} {layer.nonzero:>10} {layer.numel:>10} "
                f"{layer.sparsity:>8.2%}"
            )
        rows.append(
            f"{'total (prunable)':<32} {'':<20} {self.nonzero:>10} {self.numel:>10} {self.sparsity:>8.2%}"
        )
        rows.append(f"{'all parameters':<32} {'':<20} {self.nonzero_params:>10} {self.params:>10}")
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sparsity": self.sparsity,
            "compression": self.compression,
            "nonzero": self.nonzero,
            "numel": self.numel,
            "params": self.params,
            "nonzero_params": self.nonzero_params,
            "per_layer": self.per_layer,
        }


def sparsity_report(
    model: nn.Module,
    *,
    filter_fn: FilterFn | None = None,
    ignore: Iterable[str] = (),
    types: tuple[type[nn.Module], ...] = PRUNABLE_TYPES,
) -> SparsityReport:
    """Measure the sparsity of ``model``'s prunable weights (by their masks where present, else by zeros)."""
    masks = get_masks(model)
    layers = []
    for fqn, _module, weight in prunable_weights(model, filter_fn=filter_fn, ignore=ignore, types=types):
        name = f"{fqn}.weight" if fqn else "weight"
        mask = masks.get(name)
        nonzero = int(mask.sum()) if mask is not None else int(torch.count_nonzero(weight))
        layers.append(LayerSparsity(name, tuple(weight.shape), weight.numel(), nonzero))
    return SparsityReport(tuple(layers), count_params(model), count_params(model, nonzero=True))
