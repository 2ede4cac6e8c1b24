"""``apoz``: average percentage of zeros of each channel's activations."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from slimkit.graph.groups import ChannelGraph
from slimkit.prune.criteria import DataCriterion
from slimkit.prune.importance import ImportanceContext, Scores, register_importance


@register_importance("apoz", needs=("batches", "activations"))
@dataclass(frozen=True)
class APoZ(DataCriterion):
    """1 - average percentage of zeros of the channel's activations after ReLU (Hu et al., 2016).

    Uses the activations recorded while tracing the example inputs (use a batch of real samples).
    """

    def scores(self, graph: ChannelGraph, ctx: ImportanceContext) -> Scores:
        return _apoz(graph, ctx)


def _apoz(graph: ChannelGraph, ctx: ImportanceContext) -> Scores:
    nc = graph.num_channels
    zeros = torch.zeros(nc, dtype=torch.float64)
    count = torch.zeros(nc, dtype=torch.float64)
    for ids, frac in graph.activity:
        keep = ids >= 0
        comps = graph.comp[ids[keep]]
        zeros.index_add_(0, comps, frac[keep].double())
        count.index_add_(0, comps, torch.ones_like(comps, dtype=torch.float64))
    return (1.0 - zeros / count.clamp_min(1)).float(), count > 0
