"""Pruning methods built on the structured engine: network slimming, sensitivity analysis, progressive global
pruning to an accuracy target, soft filter pruning, and reconstruction-based channel selection (ThiNet, LASSO).

Each method is a verb returning a small report dataclass; they reuse ``prune_channels``/``make_plan`` for the
physical removal and ``slimkit.train.fit`` (with hooks) for any training.
"""

from slimkit.prune.methods.layer_removal import LayerPruneReport, prune_layers
from slimkit.prune.methods.progressive import ProgressiveReport, progressive_prune
from slimkit.prune.methods.reconstruction import ReconstructionReport, reconstruct_prune
from slimkit.prune.methods.sensitivity import (
    SensitivityConfig,
    SensitivityReport,
    SensitivityRun,
    run_sensitivity,
    sensitivity_analysis,
)
from slimkit.prune.methods.slimming import BatchNormL1, SlimmingReport, network_slimming
from slimkit.prune.methods.soft_filter import SoftFilterHook, SoftFilterReport, soft_filter_prune

__all__ = [
    "BatchNormL1", "LayerPruneReport", "ProgressiveReport", "ReconstructionReport", "SensitivityConfig",
    "SensitivityReport", "SensitivityRun", "SlimmingReport", "SoftFilterHook", "SoftFilterReport", "network_slimming",
    "progressive_prune", "reconstruct_prune", "prune_layers", "run_sensitivity", "sensitivity_analysis",
    "soft_filter_prune",
]
