"""slimkit: compress PyTorch networks and measure honestly what was gained.

The public API is a few verbs, loaded lazily so that ``import slimkit`` is cheap and starts no CUDA.
Everything not listed here is internal.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute"; each capability adds its verbs here
_EXPORTS: dict[str, str] = {
    # core
    "SlimkitError": "slimkit.core.errors:SlimkitError",
    "ConfigError": "slimkit.core.errors:ConfigError",
    "GraphError": "slimkit.core.errors:GraphError",
    "ExportError": "slimkit.core.errors:ExportError",
    # models
    "create_model": "slimkit.models:create_model",
    "list_models": "slimkit.models:list_models",
    "register_model": "slimkit.models:register_model",
    "save_model": "slimkit.state:save_model",
    "load_model": "slimkit.state:load_model",
    "CheckpointError": "slimkit.core.errors:CheckpointError",
    "FormatError": "slimkit.core.errors:FormatError",
    # codec + k-means sharing (Deep Compression)
    "CodecError": "slimkit.core.errors:CodecError",
    "save_compressed": "slimkit.state:save_compressed",
    "load_compressed": "slimkit.state:load_compressed",
    "inspect_compressed": "slimkit.codec:inspect_compressed",
    "CompressionReport": "slimkit.codec:CompressionReport",
    "share_weights": "slimkit.quant.kmeans:share_weights",
    "strip_sharing": "slimkit.quant.kmeans:strip_sharing",
    # lowrank
    "decompose": "slimkit.lowrank:decompose",
    "DecomposeConfig": "slimkit.lowrank:DecomposeConfig",
    # export
    "export_onnx": "slimkit.export:export_onnx",
    # quant
    "quantize": "slimkit.quant:quantize",
    "QuantConfig": "slimkit.quant:QuantConfig",
    "Int8Config": "slimkit.quant:Int8Config",
    "BinaryConfig": "slimkit.quant:BinaryConfig",
    "TernaryConfig": "slimkit.quant:TernaryConfig",
    "MixedPrecisionConfig": "slimkit.quant:MixedPrecisionConfig",
    "PerTensor": "slimkit.quant:PerTensor",
    "PerChannel": "slimkit.quant:PerChannel",
    "export_onnx_int8": "slimkit.quant:export_onnx_int8",
    "IntegerModel": "slimkit.quant:IntegerModel",
    # structured pruning
    "prune_channels": "slimkit.prune.structured:prune_channels",
    "plan_pruning": "slimkit.prune.structured:plan_pruning",
    "PruneConfig": "slimkit.prune.config:PruneConfig",
    "Budget": "slimkit.prune.config:Budget",
    "PruneReport": "slimkit.prune.structured:PruneReport",
    "register_importance": "slimkit.prune.importance:register_importance",
    "Importance": "slimkit.prune.importance:Importance",
    "L1": "slimkit.prune.importance:L1",
    "L2": "slimkit.prune.importance:L2",
    "FPGM": "slimkit.prune.importance:FPGM",
    "BNScale": "slimkit.prune.importance:BNScale",
    "Taylor": "slimkit.prune.criteria.taylor:Taylor",
    "APoZ": "slimkit.prune.criteria.apoz:APoZ",
    # pruning methods
    "network_slimming": "slimkit.prune.methods.slimming:network_slimming",
    "SlimmingConfig": "slimkit.prune.methods.slimming:SlimmingConfig",
    "sensitivity_analysis": "slimkit.prune.methods.sensitivity:sensitivity_analysis",
    "SensitivityConfig": "slimkit.prune.methods.sensitivity:SensitivityConfig",
    "run_sensitivity": "slimkit.prune.methods.sensitivity:run_sensitivity",
    "progressive_prune": "slimkit.prune.methods.progressive:progressive_prune",
    "soft_filter_prune": "slimkit.prune.methods.soft_filter:soft_filter_prune",
    "reconstruct_prune": "slimkit.prune.methods.reconstruction:reconstruct_prune",
    "prune_layers": "slimkit.prune.methods.layer_removal:prune_layers",
    "search_ratios": "slimkit.prune.search:search_ratios",
    "SearchConfig": "slimkit.prune.search:SearchConfig",
    "SearchResult": "slimkit.prune.search:SearchResult",
    # data
    "load_dataset": "slimkit.data:load_dataset",
    "list_datasets": "slimkit.data:list_datasets",
    # train
    "fit": "slimkit.train:fit",
    "evaluate": "slimkit.train:evaluate",
    "recalibrate_bn": "slimkit.train:recalibrate_bn",
    "TrainConfig": "slimkit.train:TrainConfig",
    "TrainResult": "slimkit.train:TrainResult",
    "Hook": "slimkit.train:Hook",
    "TrainState": "slimkit.train:TrainState",
    # distill
    "soft_target_loss": "slimkit.distill:soft_target_loss",
    "HintHook": "slimkit.distill:HintHook",
    # profile
    "profile": "slimkit.profile:profile",
    "measure_latency": "slimkit.profile:measure_latency",
    "compare_latency": "slimkit.profile:compare_latency",
    "ProfileReport": "slimkit.profile:ProfileReport",
    "LatencyReport": "slimkit.profile:LatencyReport",
    # GAN compression
    "gan_slim": "slimkit.gan:gan_slim",
    "GanSlimConfig": "slimkit.gan:GanSlimConfig",
    "GanSlimReport": "slimkit.gan:GanSlimReport",
    # unstructured pruning
    "prune_weights": "slimkit.prune.unstructured:prune_weights",
    "make_permanent": "slimkit.prune.unstructured:make_permanent",
    "sparsity_report": "slimkit.prune.unstructured:sparsity_report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'slimkit' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module_name), attr)
    package = sys.modules.get(f"{__name__}.{name}")
    if package is not None and callable(package):
        # a verb named like its package (``profile``): keep the callable package bound, so that
        # ``import slimkit.profile as p`` still yields the package after the verb was used
        value = package
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
