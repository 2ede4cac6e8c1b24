"""The structured-pruning engine's building blocks, for pruning methods (slimming, sensitivity, progressive, SFP,
ThiNet/LASSO) and for your own: the internal API they share, kept stable inside slimkit.

A method composes the same five steps that :func:`slimkit.prune_channels` runs, swapping the ones it changes:

1. ``graph = build_graph(model, inputs)``: trace once; ``graph.groups`` are the coupled channel sets
   (``Group.channels`` index ``graph`` channels; ``graph.macs(removed)``/``graph.params(removed)`` cost any mask).
2. ``scores = channel_scores(graph, "l1", ImportanceContext(...))``: one score per graph channel, from any
   registered criterion; ``per_slice_scores(graph, slice_norms(2), ctx)`` builds a custom one from per-slice values.
3. ``groups, excluded = eligible_groups(graph, scores, config)``: what may be pruned, each group's channels sorted.
4. ``removed = select_channels(...)`` (a ratio) or ``select_for_budget(...)`` (MACs/params budget): a boolean mask
   over graph channels; methods may also build the mask themselves (a |gamma| threshold, a greedy search).
5. ``make_plan(graph, removed, inputs, config).apply(optimizer=...)``: atomic slicing, attributes, optimizer state.
"""

from slimkit.graph.groups import ChannelGraph, Group, build_graph
from slimkit.prune.config import PruneConfig
from slimkit.prune.importance import (
    Importance,
    ImportanceContext,
    Scores,
    channel_scores,
    per_slice_scores,
    register_importance,
    slice_norms,
)
from slimkit.prune.select import eligible_groups, select_channels, select_for_budget
from slimkit.prune.structured import PrunePlan, make_plan, plan_pruning

__all__ = [
    "ChannelGraph", "Group", "Importance", "ImportanceContext", "PruneConfig", "PrunePlan", "Scores", "build_graph",
    "channel_scores", "eligible_groups", "make_plan", "per_slice_scores", "plan_pruning", "register_importance",
    "select_channels", "select_for_budget", "slice_norms",
]
