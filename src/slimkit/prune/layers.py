"""Tier 1: remove given output or input channels from a single layer, keyed by module type.

These act on one module only (no coupling): use them when you know the consumers yourself, or to support a layer
type in your own code. ``register_layer_pruner(MyLayer, out=[("weight", 0)], in_=[("weight", 1)])`` adds a type.
The pairs are part of the layer's one rule (:class:`slimkit.core.shapes.LayerRule`), where every built-in type is
described (conv, linear, transposed convs, normalization layers, PReLU, embeddings).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from slimkit.core.errors import GraphError
from slimkit.core.modules import label
from slimkit.core.shapes import LAYER_RULES, LayerRule, register_layer_rule, sync_attributes

#: the layer rules (``core.shapes.LAYER_RULES``): a type's pruner is its rule's ``out``/``in_`` pairs
LAYER_PRUNERS = LAYER_RULES


def register_layer_pruner(cls: type, *, out: Sequence[tuple[str, int]], in_: Sequence[tuple[str, int]]) -> None:
    register_layer_rule(cls, out=out, in_=in_)



def _spec(module: nn.Module) -> LayerRule:
    spec = LAYER_RULES.for_type(type(module))
    if spec is not None and spec.out is not None:
        return spec
    raise GraphError(f"{label('', module)}: no layer pruner registered for {type(module).__name__}")


def _remove(module: nn.Module, pairs: tuple[tuple[str, int], ...], indices: Sequence[int] | torch.Tensor, what: str) -> None:
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and module.groups > 1:
        raise GraphError(f"{label('', module)}: {what} of a grouped conv must be removed through prune_channels")
    idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
    for attr, dim in pairs:
        t = getattr(module, attr, None)
        if not isinstance(t, torch.Tensor) or t.ndim <= dim:
            continue
        keep = torch.ones(t.shape[dim], dtype=torch.bool)
        if idx.numel() and (int(idx.max()) >= t.shape[dim] or int(idx.min()) < 0):
            raise GraphError(f"{label('', module)}: {what} index out of range for {attr} of size {t.shape[dim]}")
        keep[idx] = False
        data = t.detach().index_select(dim, keep.nonzero().squeeze(1)).contiguous()
        if isinstance(t, nn.Parameter):
            module._parameters[attr] = nn.Parameter(data, requires_grad=t.requires_grad)
        else:
            module._buffers[attr] = data
    sync_attributes(module)


def prune_out_channels(module: nn.Module, indices: Sequence[int] | torch.Tensor) -> None:
    """Remove output channels ``indices`` of one layer (its consumers are not touched)."""
    _remove(module, _spec(module).out or (), indices, "output channels")


def prune_in_channels(module: nn.Module, indices: Sequence[int] | torch.Tensor) -> None:
    """Remove input channels ``indices`` of one layer (its producers are not touched)."""
    _remove(module, _spec(module).in_ or (), indices, "input channels")
