"""Structured pruning: importance criteria, selection, plan and apply (``prune_channels``, ``plan_pruning``).

Unstructured masks live in ``slimkit.prune.unstructured`` and are not imported here.
"""

from slimkit.prune.config import PruneConfig
from slimkit.prune.criteria.apoz import APoZ
from slimkit.prune.criteria.taylor import Taylor
from slimkit.prune.importance import (
    FPGM,
    L1,
    L2,
    BNScale,
    Importance,
    register_importance,
    resolve_importance,
)
from slimkit.prune.layers import prune_in_channels, prune_out_channels, register_layer_pruner
from slimkit.prune.structured import PrunePlan, PruneReport, plan_pruning, prune_channels

__all__ = [
    "APoZ", "BNScale", "FPGM", "Importance", "L1", "L2", "Taylor", "resolve_importance",
    "PruneConfig", "PrunePlan", "PruneReport", "plan_pruning", "prune_channels", "prune_in_channels",
    "prune_out_channels", "register_importance", "register_layer_pruner",
]
