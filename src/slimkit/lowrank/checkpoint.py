"""Save and load decomposed models without pickled code: build spec + factor plan + state dict.

:func:`slimkit.state.save_model` rebuilds a model from its zoo spec; a decomposed model has different modules,
so its factor plan (``{fqn: {"method", "ranks"}}``) travels in the file's metadata and :func:`load_decomposed`
re-applies it to the rebuilt model before loading the weights (``weights_only=True``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from slimkit.lowrank.api import PLAN_ATTR
from slimkit.state import load_model, save_model

PLAN_KEY = "lowrank_plan"


def save_decomposed(model: nn.Module, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None) -> Path:
    """Like :func:`slimkit.state.save_model`, recording the factor plan so the file loads back."""
    meta = dict(metadata or {})
    meta[PLAN_KEY] = dict(getattr(model, PLAN_ATTR, {}) or {})
    return save_model(model, path, metadata=meta)


def load_decomposed(path: str | os.PathLike) -> nn.Module:
    """Load a model saved by :func:`save_decomposed`; the same as :func:`slimkit.state.load_model`, which
    re-applies the factor plan recorded in the file."""
    return load_model(path)
