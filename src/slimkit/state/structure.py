"""A compressed model's structure as data: what its weights' shapes alone cannot tell a loader.

A saved model is rebuilt in three steps: build the original architecture (a registered factory, or an instance
the user passes), replay the structure edits that slimkit's transforms made (quantized layers, factored layers,
removed blocks, head counts...), then load the weights. Each kind of edit is one :class:`StructureKind`: a pair
of functions, ``describe(model)`` (JSON entries, plus any tensors they need) and ``restore(model, entry,
tensors)``, registered under a stable name. Loading only ever calls these registered functions: nothing named in
a file is imported or called.

``before_load`` kinds run on the freshly built model; ``after_load`` kinds run once the weights are in (masks,
weight sharing and attributes are read from, or checked against, the loaded weights).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from slimkit.core.errors import CheckpointError
from slimkit.core.modules import label
from slimkit.core.registry import Registry

Entries = list[dict[str, Any]]
Tensors = dict[str, torch.Tensor]
Phase = Literal["before_load", "after_load"]
EXTRA_PREFIX = "__slimkit__."  # tensors that belong to a structure entry, not to the state dict


@dataclass(frozen=True)
class StructureKind:
    """One kind of structure edit.

    Attributes:
        name: the stable name written in files.
        phase: ``before_load`` (shapes the module tree) or ``after_load`` (needs the loaded weights).
        describe: ``model -> (entries, tensors)``; each entry is a JSON-ready dict. An entry with an ``fqn`` owns
            that module and everything under it (see :func:`check_representable`).
        restore: ``(model, entry, tensors) -> None``; raises ``CheckpointError`` naming what does not fit.
    """

    name: str
    phase: Phase
    describe: Callable[[nn.Module], tuple[Entries, Tensors]]
    restore: Callable[[nn.Module, dict[str, Any], Tensors], None]
    order: int = 0


STRUCTURE_KINDS: Registry[StructureKind] = Registry("structure kind")


def register_structure_kind(kind: StructureKind) -> StructureKind:
    """Add a kind of structure edit (users register their own transforms' edits the same way)."""
    STRUCTURE_KINDS.add(kind.name, kind)
    return kind


def _kinds() -> list[StructureKind]:
    import slimkit.state.kinds  # noqa: F401 - registers the built-in kinds

    return sorted((STRUCTURE_KINDS.get(n) for n in STRUCTURE_KINDS.names()), key=lambda k: (k.order, k.name))


def describe_structure(model: nn.Module) -> tuple[Entries, Tensors]:
    """Every structure edit of ``model`` as ``[{"kind": ..., ...}]`` in replay order, and the tensors they need."""
    entries: Entries = []
    tensors: Tensors = {}
    for kind in _kinds():
        found, extra = kind.describe(model)
        entries.extend({"kind": kind.name, **entry} for entry in found)
        tensors.update({EXTRA_PREFIX + k: v for k, v in extra.items()})
    check_representable(model, entries)
    return entries, tensors


def restore_structure(model: nn.Module, entries: Any, tensors: Mapping[str, torch.Tensor], phase: Phase,
                      source: str) -> None:
    """Replay the ``phase`` entries of a file on ``model``; refuses unknown kinds and malformed entries."""
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise CheckpointError(f"{source}: 'structure' must be a list of objects")
    extra = {k[len(EXTRA_PREFIX):]: v for k, v in tensors.items() if k.startswith(EXTRA_PREFIX)}
    _kinds()  # the built-in kinds are registered
    for i, entry in enumerate(entries):
        name = entry.get("kind")
        if not isinstance(name, str) or name not in STRUCTURE_KINDS:
            raise CheckpointError(f"{source}: structure[{i}]: unknown kind {name!r} (a newer slimkit, or a plug-in "
                                  "that registers it, may read this file)")
        kind = STRUCTURE_KINDS.get(name)
        if kind.phase != phase:
            continue
        try:
            kind.restore(model, entry, extra)
        except CheckpointError as err:
            raise CheckpointError(f"{source}: structure[{i}] ({name}): {err}") from None
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as err:
            raise CheckpointError(
                f"{source}: structure[{i}] ({name}): does not fit this model ({type(err).__name__}: {err})"
            ) from None


def _owned(entries: Entries) -> list[str]:
    return [e["fqn"] for e in entries if isinstance(e.get("fqn"), str)]


def _under(fqn: str, owners: list[str]) -> bool:
    return any(o == "" or fqn == o or fqn.startswith(o + ".") for o in owners)


def _is_base_class(module: nn.Module) -> bool:
    """Classes that an architecture is built from (torch's, the user's, slimkit's zoo, test zoo and sentence encoder)."""
    where = type(module).__module__
    return not where.startswith("slimkit.") or where.startswith(("slimkit.models", "slimkit.testing", "slimkit.hf.encoder"))


def check_representable(model: nn.Module, entries: Entries) -> None:
    """Refuse, naming the layer, a model holding a slimkit-made module that no structure entry describes.

    Such a module would be rebuilt as whatever the architecture had there, so the file would load wrong; better
    to fail when saving than when the file is opened on a device.
    """
    owners = _owned(entries)
    for fqn, module in model.named_modules():  # parametrizations too: fc.parametrizations.weight.0
        if not _is_base_class(module) and not _under(fqn, owners):
            raise CheckpointError(
                f"{label(fqn, module)}: slimkit cannot record this module in a file (no structure kind describes "
                f"{type(module).__module__}.{type(module).__name__}); undo that transform before saving, or "
                "register a StructureKind for it"
            )
