"""Small helpers the pruning methods share: group lookup, removal masks, accuracy, in-place model restore."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from slimkit.core.errors import ConfigError
from slimkit.core.forward import training_mode
from slimkit.core.shapes import resize_to_state_dict
from slimkit.prune.engine import ChannelGraph, Group


def as_tuple(example_inputs: Any) -> tuple:
    return example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)


def on_device(inputs: tuple, model: nn.Module) -> tuple:
    """``inputs`` moved to where ``model``'s parameters are (``fit`` leaves a model on its training device)."""
    from slimkit.core.modules import model_device

    device = model_device(model)
    return tuple(x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs)


def find_group(graph: ChannelGraph, name: str) -> Group:
    """The prunable group called ``name`` (its producer's fqn, possibly with ``+k``)."""
    for g in graph.groups:
        if g.name == name or g.name.split(" ")[0] == name:
            return g
    raise ConfigError(f"no prunable group named {name!r}; groups: {', '.join(g.name for g in graph.groups)}")


def lowest(graph: ChannelGraph, group: Group, scores: torch.Tensor, count: int) -> torch.Tensor:
    """A removal mask over ``graph``'s channels holding the ``count`` lowest-scored channels of ``group``."""
    removed = torch.zeros(graph.num_channels, dtype=torch.bool)
    if count > 0:
        order = group.channels[torch.argsort(scores[group.channels], stable=True)]
        removed[order[:count]] = True
    return removed


def accuracy(model: nn.Module, data: Any, batch_size: int = 256) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` on ``data`` (a dataset, a loader, or a list of batches)."""
    from slimkit.train import evaluate

    if isinstance(data, list) and data and isinstance(data[0], (tuple, list)):
        return _batches_accuracy(model, data)
    return float(evaluate(model, data, batch_size=batch_size)["accuracy"])


def _batches_accuracy(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    correct = total = 0
    with torch.no_grad(), training_mode(model, False):
        for x, y in batches:
            correct += int((model(x).argmax(1) == y).sum())
            total += int(y.numel())
    return correct / max(total, 1)


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def restore(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put ``model`` back to ``state`` in place, shapes included (undoes pruning rounds)."""
    resize_to_state_dict(model, state)
    model.load_state_dict(state)


def bn_channel_count(graph: ChannelGraph) -> int:
    return sum(g.size * g.width for g in graph.groups)
