"""Build the original architecture a saved model names, without importing anything a file names.

A file names its architecture as data: a registered model name (the zoo, or one the user registered with
:func:`slimkit.register_model` in the process that loads it) plus keyword arguments. A ``package.module:factory``
string read from a file is never imported: the user passes the factory (``factory=`` / ``--factory``) or an
instance (``model=``). Before building, the architecture is sized on the meta device (no memory), so a file
asking for ``width: 100000`` is refused instead of allocating tens of gigabytes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from slimkit.core.errors import CheckpointError, ConfigError
from slimkit.core.limits import ENV_VAR, architecture_budget_bytes


def _meta_bytes(factory: Callable[..., nn.Module], kwargs: dict[str, Any]) -> int | None:
    """Bytes of parameters and buffers ``factory(**kwargs)`` would allocate, measured on the meta device."""
    try:
        with torch.device("meta"):
            probe = factory(**kwargs)
    except Exception:  # noqa: BLE001 - a factory that cannot run on meta is simply not pre-sized
        return None
    if not isinstance(probe, nn.Module):
        return None
    return sum(t.numel() * t.element_size() for t in itertools.chain(probe.parameters(), probe.buffers()))


def _spec_parts(spec: Any, source: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise CheckpointError(f"{source}: 'spec' must be an object with a model name")
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise CheckpointError(f"{source}: spec.kwargs must be an object")
    return spec["name"], kwargs


def build_architecture(spec: Any, *, factory: Callable[..., nn.Module] | None, declared_bytes: int,
                       source: str) -> nn.Module:
    """The freshly built architecture ``spec`` names (``factory`` overrides the name).

    Raises:
        CheckpointError: the file names no architecture, names one that is not registered (slimkit never imports
            it), asks for one larger than the budget, or the factory rejects the file's arguments.
    """
    from slimkit.models._registry import MODELS, instantiate

    if spec is None and factory is None:
        raise CheckpointError(
            f"{source}: the saved model is the user's own nn.Module (the file names no architecture); pass a "
            "fresh instance (load_model(path, model=MyNet())) or its factory (factory=make_net, CLI --factory "
            "package.module:function)"
        )
    name, kwargs = _spec_parts(spec, source) if spec is not None else ("", {})
    if factory is None:
        if name not in MODELS:
            raise CheckpointError(
                f"{source}: the file names the model {name!r}, which is not registered in this process. slimkit "
                f"never imports code named in a file; if you trust this model, register it "
                f"(slimkit.register_model({name!r})(factory)) or pass factory= (CLI: --factory "
                f"{name if ':' in name else 'package.module:function'})"
            )
        factory = MODELS.get(name)
    budget = architecture_budget_bytes(declared_bytes)
    size = _meta_bytes(factory, kwargs)
    if size is not None and size > budget:
        raise CheckpointError(
            f"{source}: the architecture it names ({name or 'factory'} with {kwargs}) needs {size:,} bytes, more "
            f"than the {budget:,} this {declared_bytes:,}-byte state allows; set {ENV_VAR} to raise the limit"
        )
    try:
        return instantiate(factory, name if spec is not None else None, kwargs)
    except ConfigError as err:
        raise CheckpointError(f"{source}: {err}") from None
