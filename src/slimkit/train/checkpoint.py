"""Training checkpoints: everything needed to continue a run bit-identically, with no pickled objects.

A checkpoint holds tensors and plain values only: model state, optimizer state keyed by parameter *name* (so it
survives parameter re-creation and can be sliced with its parameter by the structured pruning engine), scheduler
and loss-scaler state, every RNG state, the epoch and the history. It is a ``.slim`` container (checked framing,
SHA-256, load limits; :mod:`slimkit.codec.container`): the plain values as a JSON tree in the header
(:mod:`slimkit.codec.tree`), the tensors raw in the payload. Checkpoints of slimkit 0.1 (``torch.save`` zip, format
``slimkit.train/1``) are still read, with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slimkit.codec.api import load_state, write_model
from slimkit.codec.container import MAGIC
from slimkit.codec.tree import pack_tree, unpack_tree
from slimkit.core.errors import CheckpointError, CodecError, FormatError
from slimkit.core.io import read_legacy_payload

FORMAT = "slimkit.train"
VERSION = 2
LEGACY_FORMAT = "slimkit.train/1"
CHECKPOINT_NAME = "last.pt"


def parameter_names(model: nn.Module, extra: Mapping[str, nn.Parameter] | None = None) -> dict[int, str]:
    """``id(param) -> name`` for the model's parameters (shared ones under their first name) and ``extra``."""
    names: dict[int, str] = {}
    for name, p in model.named_parameters():
        names.setdefault(id(p), name)
    for name, p in (extra or {}).items():
        names.setdefault(id(p), name)
    return names


def optimizer_state_by_name(optimizer: torch.optim.Optimizer, names: Mapping[int, str]) -> dict[str, Any]:
    """``optimizer.state_dict()`` with parameter positions replaced by parameter names.

    Raises:
        CheckpointError: when the optimizer holds a parameter missing from ``names``.
    """
    saved = optimizer.state_dict()
    index_to_name: dict[int, str] = {}
    for group_saved, group in zip(saved["param_groups"], optimizer.param_groups):
        for index, param in zip(group_saved["params"], group["params"]):
            if id(param) not in names:
                raise CheckpointError(f"optimizer parameter #{index} {tuple(param.shape)} is not a named parameter")
            index_to_name[index] = names[id(param)]
    return {
        "state": {index_to_name[i]: s for i, s in saved["state"].items()},
        "param_groups": [{**g, "params": [index_to_name[i] for i in g["params"]]} for g in saved["param_groups"]],
    }


def load_optimizer_state_by_name(
    optimizer: torch.optim.Optimizer, saved: Mapping[str, Any], names: Mapping[int, str]
) -> None:
    """Inverse of :func:`optimizer_state_by_name` for an optimizer over the same named parameters.

    Raises:
        CheckpointError: naming the first parameter that is missing, extra or of another shape.
    """
    name_to_index: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    index = 0
    for group in optimizer.param_groups:
        for param in group["params"]:
            name = names[id(param)]
            name_to_index[name] = index
            shapes[name] = tuple(param.shape)
            index += 1
    saved_names = [n for g in saved["param_groups"] for n in g["params"]]
    if sorted(saved_names) != sorted(name_to_index) or len(saved["param_groups"]) != len(optimizer.param_groups):
        missing = sorted(set(name_to_index) - set(saved_names))
        extra = sorted(set(saved_names) - set(name_to_index))
        raise CheckpointError(f"optimizer state does not match the model: missing {missing[:5]}, unexpected {extra[:5]}")
    for name, param_state in saved["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and tuple(value.shape) != shapes[name]:
                raise CheckpointError(
                    f"optimizer state {name}.{key} has shape {tuple(value.shape)}, parameter has {shapes[name]}"
                )
    optimizer.load_state_dict(
        {
            "state": {name_to_index[n]: s for n, s in saved["state"].items()},
            "param_groups": [{**g, "params": [name_to_index[n] for n in g["params"]]} for g in saved["param_groups"]],
        }
    )


def rng_state() -> dict[str, Any]:
    """Every global RNG state (torch CPU, CUDA, numpy, python) as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached": float(cached), "kind": str(kind)},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(checkpoint_dir: str | os.PathLike) -> Path:
    return Path(checkpoint_dir) / CHECKPOINT_NAME


def save_checkpoint(checkpoint_dir: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically to ``checkpoint_dir/last.pt`` as a ``.slim`` container.

    Raises:
        CheckpointError: naming the path of a value in ``payload`` that is not a tensor, array or plain value.
    """
    tree, tensors = pack_tree(payload)
    path = checkpoint_path(checkpoint_dir)
    header = {"format": FORMAT, "version": VERSION, "tree": tree}
    write_model(path, header, [(name, t, None) for name, t in tensors.items()], layout="dense", huffman=False)
    return path


def load_checkpoint(checkpoint_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The checkpoint in ``checkpoint_dir``, or None when there is none.

    Raises:
        FormatError: the file is damaged or altered (checksum), malformed, or claims more than the load limits.
        CheckpointError: the file is readable but not a slimkit training checkpoint of a known version.
    """
    path = checkpoint_path(checkpoint_dir)
    if not path.is_file():
        return None
    with path.open("rb") as f:
        magic = f.read(len(MAGIC))
    if magic != MAGIC and zipfile.is_zipfile(path):
        return _load_legacy(path)
    try:
        tensors, header = load_state(path)
    except FormatError:
        raise
    except CodecError as err:
        raise FormatError(str(err)) from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a slimkit training checkpoint (format {header.get('format')!r}, "
                              f"expected {FORMAT!r})")
    if header.get("version") != VERSION:
        raise CheckpointError(f"{path}: training checkpoint version {header.get('version')!r} is not readable by "
                              f"this slimkit (it reads version {VERSION}); upgrade slimkit or resume=False")
    if len(tensors) != len(header["tensors"]):
        raise FormatError(f"{path}: tensor names are not unique")
    payload = unpack_tree(header.get("tree"), tensors, root=f"{path}: state")
    if not isinstance(payload, dict):
        raise FormatError(f"{path}: the checkpoint's tree is not a mapping")
    return payload


def _load_legacy(path: Path) -> dict[str, Any]:
    """A slimkit 0.1 checkpoint (``torch.save`` zip of tensors and plain values)."""
    payload = read_legacy_payload(path, LEGACY_FORMAT, "training checkpoint")
    return {k: v for k, v in payload.items() if k != "format"}
