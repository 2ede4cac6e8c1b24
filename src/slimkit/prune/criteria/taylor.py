"""``taylor``: first-order Taylor importance from gradients over a few batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from slimkit.core.errors import ConfigError
from slimkit.core.forward import training_mode
from slimkit.graph.groups import ChannelGraph
from slimkit.prune.criteria import DataCriterion
from slimkit.prune.importance import ImportanceContext, Scores, reduce_except, register_importance


@register_importance("taylor", needs=("batches",))
@dataclass(frozen=True)
class Taylor(DataCriterion):
    """First-order Taylor estimate |sum(w * dL/dw)| per slice (Molchanov et al., 2019), over a few batches.

    Needs ``importance_data`` (an iterable of ``(inputs, targets)``) and optionally ``loss_fn``
    (default: cross entropy).
    """

    def scores(self, graph: ChannelGraph, ctx: ImportanceContext) -> Scores:
        return _taylor(graph, ctx)


def _taylor(graph: ChannelGraph, ctx: ImportanceContext) -> Scores:
    if ctx.data is None:
        raise ConfigError("importance 'taylor' needs importance_data: a few (inputs, targets) batches")
    model = graph.model
    loss_fn = ctx.loss_fn or nn.functional.cross_entropy
    params = [t for t in graph.tensors if isinstance(t, nn.Parameter) and t.requires_grad]
    saved = [p.grad for p in params]
    acc = {id(p): torch.zeros_like(p, dtype=torch.float32) for p in params}
    try:
        for batch in ctx.data:
            inputs, targets = batch[0], batch[1]
            inputs = inputs if isinstance(inputs, tuple) else (inputs,)
            for p in params:
                p.grad = None
            with torch.enable_grad(), training_mode(model, False):
                loss_fn(model(*inputs), targets).backward()
            for p in params:
                if p.grad is not None:
                    acc[id(p)] += (p.detach() * p.grad).float()
    finally:
        for p, g in zip(params, saved):
            p.grad = g

    scores = torch.zeros(graph.num_channels, dtype=torch.float64)
    count = torch.zeros(graph.num_channels, dtype=torch.float64)
    for o in graph.occurrences:
        t = graph.tensors[o.tensor]
        if id(t) not in acc:
            continue
        v = reduce_except(acc[id(t)], o.dim, lambda x, dims: x.sum(dims)).abs().double()
        comps = graph.comp[o.ids]
        scores.index_add_(0, comps, v)
        count.index_add_(0, comps, torch.ones_like(v))
    return (scores / count.clamp_min(1)).float(), count > 0
