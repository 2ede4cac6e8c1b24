"""Model files of slimkit 0.1 (``torch.save`` zip, format ``slimkit.model/1``): read with ``weights_only=True``.

Their factory spec is data like any other: it must name a registered model (or the caller passes ``factory=`` /
``model=``), never something to import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from slimkit.core.errors import CheckpointError
from slimkit.core.io import read_legacy_payload

LEGACY_FORMAT = "slimkit.model/1"


def read_legacy(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Header-like fields and tensors of a 0.1 model file."""
    payload = read_legacy_payload(path, LEGACY_FORMAT, "model file")
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: its state_dict is not a mapping of tensors")
    meta = payload.get("metadata") or {}
    entries: list[dict[str, Any]] = []
    if meta.get("removed_layers"):
        entries.append({"kind": "removed_layers", "names": meta["removed_layers"]})
    for fqn, plan in (meta.get("lowrank_plan") or {}).items():
        entries.append({"kind": "lowrank", "fqn": fqn, "method": plan.get("method"), "ranks": plan.get("ranks")})
    for fqn, heads in (meta.get("attention_heads") or {}).items():
        entries.append({"kind": "attention_heads", "fqn": fqn, "num_heads": heads})
    header = {"format": LEGACY_FORMAT, "spec": payload.get("spec"), "structure": entries, "metadata": meta}
    return header, dict(state)
