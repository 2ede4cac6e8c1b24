"""Unstructured pruning: exact magnitude masks (per layer or global), masks kept through training, the AGP and
iterative schedules, lottery-ticket rewinding, per-layer sparsity reports and sparse export.

Example:
    >>> from slimkit.prune.unstructured import prune_weights, MaskHook, make_permanent
    >>> report = prune_weights(model, sparsity=0.9)         # global magnitude, masks attached
    >>> fit(model, data, config, hooks=[MaskHook()])        # pruned weights stay exactly zero
    >>> make_permanent(model)                               # plain model with zeros
"""

from slimkit.prune.unstructured.hooks import AGPHook, MaskHook, RewindHook, agp_plan, agp_sparsity
from slimkit.prune.unstructured.magnitude import (
    WEIGHT_SCORES,
    Scope,
    WeightPruneConfig,
    compute_masks,
    prune_weights,
    register_weight_score,
)
from slimkit.prune.unstructured.masks import (
    PRUNABLE_TYPES,
    apply_masks,
    get_masks,
    has_masks,
    make_permanent,
    mask_gradients,
    masks_from_zeros,
    set_masks,
)
from slimkit.prune.unstructured.report import LayerSparsity, SparsityReport, sparsity_report
from slimkit.prune.unstructured.schedules import (
    RoundResult,
    ScheduleReport,
    Spacing,
    iterative_prune,
    lottery_ticket,
    rewind_weights,
    round_sparsities,
)
from slimkit.prune.unstructured.sparse import (
    from_sparse_state_dict,
    load_sparse_state_dict,
    sparse_size_bytes,
    to_sparse_state_dict,
)

__all__ = [
    "PRUNABLE_TYPES", "WEIGHT_SCORES", "AGPHook", "LayerSparsity", "MaskHook", "RewindHook", "RoundResult",
    "ScheduleReport", "Scope", "Spacing", "SparsityReport", "WeightPruneConfig", "agp_plan", "agp_sparsity",
    "apply_masks", "compute_masks", "from_sparse_state_dict", "get_masks", "has_masks", "iterative_prune",
    "load_sparse_state_dict", "lottery_ticket", "make_permanent", "mask_gradients", "masks_from_zeros", "prune_weights",
    "register_weight_score", "rewind_weights", "round_sparsities", "set_masks", "sparse_size_bytes",
    "sparsity_report", "to_sparse_state_dict",
]
