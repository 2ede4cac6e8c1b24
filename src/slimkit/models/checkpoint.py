"""Save and load a (possibly pruned) model without pickled code: its build spec plus its state dict.

Loading rebuilds the model from the spec, resizes tensors to the saved shapes (pruned channels), and loads the
weights with ``torch.load(weights_only=True)``, which refuses arbitrary objects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimkit.core.errors import CheckpointError, SlimkitError
from slimkit.core.io import atomic_write
from slimkit.core.shapes import resize_to_state_dict
from slimkit.models._registry import create_model, model_spec

FORMAT = "slimkit.model/1"


def save_model(model: nn.Module, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` atomically to ``path``. The model must come from :func:`create_model`."""
    spec = model_spec(model)
    if spec is None:
        raise CheckpointError(
            f"{type(model).__name__} has no build spec: create it with slimkit.models.create_model "
            "(a zoo name or 'package.module:factory') so it can be rebuilt without pickled code"
        )
    payload = {
        "format": FORMAT,
        "spec": spec,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": {**_structure_metadata(model), **(metadata or {})},
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files
        raise CheckpointError(f"{path}: not a readable slimkit model file ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a slimkit model file (expected format {FORMAT})")
    return payload


# metadata key -> "module:function(model, value)" re-creating structure that a transform changed (e.g. layers
# factored by slimkit.decompose) on the freshly built model, before the weights are loaded. Only slimkit's own
# functions are named here, so a file cannot make the loader import anything else.
STRUCTURE_RESTORERS: dict[str, str] = {
    "lowrank_plan": "slimkit.lowrank.api:apply_plan",
    "attention_heads": "slimkit.core.shapes:restore_attention_heads",
    "removed_layers": "slimkit.prune.methods.layer_removal:restore_removed_layers",
}


def _structure_metadata(model: nn.Module) -> dict[str, Any]:
    """What the weights' shapes alone cannot tell: removed blocks, the head count of attention layers."""
    meta: dict[str, Any] = {}
    removed = getattr(model, "slimkit_removed_layers", None)
    if removed:  # blocks replaced by nn.Identity (slimkit.prune_layers): first, so the rest sees the same modules
        meta["removed_layers"] = list(removed)
    heads = {name: m.num_heads for name, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)}
    if heads:
        meta["attention_heads"] = heads
    return meta


def _restore_structure(model: nn.Module, metadata: dict[str, Any]) -> None:
    import importlib

    for key, target in STRUCTURE_RESTORERS.items():
        if metadata.get(key):
            module_name, _, attr = target.partition(":")
            getattr(importlib.import_module(module_name), attr)(model, metadata[key])


def load_model(path: str | os.PathLike) -> nn.Module:
    """Rebuild the model saved by :func:`save_model`: pruned shapes and decomposed layers included."""
    payload = read_checkpoint(path)
    spec = payload["spec"]
    model = create_model(spec["name"], **spec["kwargs"])
    try:
        _restore_structure(model, payload.get("metadata") or {})
        resize_to_state_dict(model, payload["state_dict"])
        model.load_state_dict(payload["state_dict"])
    except (SlimkitError, RuntimeError) as err:
        raise CheckpointError(f"{path}: does not match its model spec: {err}") from None
    return model
