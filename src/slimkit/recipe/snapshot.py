"""Whole-model snapshots for a run folder, so a run resumes whatever the stages did to the model.

A snapshot is an ordinary model file (:func:`slimkit.save_model`: the checked container, the architecture as data,
the structure edits the stages made): any slimkit command opens it, and loading it runs no code from the run
folder. The manifest's SHA-256 is kept as a second check that the file is the one this run wrote.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from slimkit.core.errors import CheckpointError
from slimkit.state import load_model, save_model


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_snapshot(model: nn.Module, path: str | os.PathLike, *, example_inputs: Any = None) -> str:
    """Write ``model`` atomically as a model file and return its SHA-256 (to record in the manifest)."""
    save_model(model, path, example_inputs=example_inputs)
    return file_sha256(path)


def load_snapshot(path: str | os.PathLike, sha256: str, *,
                  factory: Callable[..., nn.Module] | None = None) -> nn.Module:
    """Load a snapshot written by :func:`save_snapshot`, refusing a file whose hash differs from the manifest's.

    ``factory`` builds the architecture when the recipe names the user's own ``package.module:factory`` (the
    recipe is the user's code; the snapshot file only names it).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: snapshot missing; cannot resume from it")
    if file_sha256(path) != sha256:
        raise CheckpointError(f"{path}: checksum differs from the run manifest; the snapshot was changed")
    return load_model(path, factory=factory)
