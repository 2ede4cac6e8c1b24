"""Structured pruning: importance criteria, selection, plan and apply (``prune_channels``, ``plan_pruning``).

Unstructured masks live in ``slimkit.prune.unstructured`` and are not imported here.
"""

from slimkit.prune.config import PruneConfig
from slimkit.prune.importance import register_importance
from slimkit.prune.layers import prune_in_channels, prune_out_channels, register_layer_pruner
from slimkit.prune.structured import PrunePlan, PruneReport, plan_pruning, prune_channels

__all__ = [
    "PruneConfig", "PrunePlan", "PruneReport", "plan_pruning", "prune_channels", "prune_in_channels",
    "prune_out_channels", "register_importance", "register_layer_pruner",
]
