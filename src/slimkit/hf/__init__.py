"""Hugging Face in and out: prune a ``transformers`` model by heads, FFN neurons and hidden width, and keep its
config and module attributes in line so ``save_pretrained`` / ``from_pretrained`` round-trip.

``transformers`` is an optional extra (``pip install slimkit[hf]``); ``import slimkit`` never imports it, and
nothing here does either: modules are recognized by class name.
"""

from slimkit.hf.modules import register_hf_module
from slimkit.hf.prune import (
    HFConfigWarning,
    HFPruneConfig,
    HFPruneReport,
    LayerWidth,
    prune_pretrained,
    save_pretrained,
)
from slimkit.hf.sync import HFConfigError, layer_widths, sync_config

__all__ = [
    "HFConfigError", "HFConfigWarning", "HFPruneConfig", "HFPruneReport", "LayerWidth", "layer_widths", "prune_pretrained",
    "register_hf_module", "save_pretrained", "sync_config",
]
