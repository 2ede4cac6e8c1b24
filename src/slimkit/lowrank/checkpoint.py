"""Save and load decomposed models without pickled code: build spec + factor plan + state dict.

:func:`slimkit.models.save_model` rebuilds a model from its zoo spec; a decomposed model has different modules,
so its factor plan (``{fqn: {"method", "ranks"}}``) travels in the file's metadata and :func:`load_decomposed`
re-applies it to the rebuilt model before loading the weights (``weights_only=True``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from slimkit.core.errors import CheckpointError, SlimkitError
from slimkit.core.shapes import resize_to_state_dict
from slimkit.lowrank.api import PLAN_ATTR, apply_plan
from slimkit.models import create_model, save_model
from slimkit.models.checkpoint import read_checkpoint

PLAN_KEY = "lowrank_plan"


def save_decomposed(model: nn.Module, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None) -> Path:
    """Like :func:`slimkit.models.save_model`, recording the factor plan so the file loads back."""
    meta = dict(metadata or {})
    meta[PLAN_KEY] = dict(getattr(model, PLAN_ATTR, {}) or {})
    return save_model(model, path, metadata=meta)


def load_decomposed(path: str | os.PathLike) -> nn.Module:
    """Load a model saved by :func:`save_decomposed` (or a plain :func:`save_model` file)."""
    payload = read_checkpoint(path)
    spec = payload["spec"]
    model = create_model(spec["name"], **spec["kwargs"])
    plan = (payload.get("metadata") or {}).get(PLAN_KEY) or {}
    try:
        apply_plan(model, plan)
        resize_to_state_dict(model, payload["state_dict"])
        model.load_state_dict(payload["state_dict"])
    except (SlimkitError, RuntimeError) as err:
        raise CheckpointError(f"{path}: does not match its model spec and factor plan: {err}") from None
    return model
