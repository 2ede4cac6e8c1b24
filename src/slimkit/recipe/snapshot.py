"""Whole-model snapshots for a run folder, so a run resumes whatever the stages did to the model.

Stages may replace modules (quantized, decomposed layers), so a snapshot keeps the module object itself.
Unpickling can run code, so a snapshot is loaded only when its SHA-256 matches the one slimkit recorded in the
run's manifest when it wrote the file: a file slimkit did not write is refused.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from slimkit.core.errors import CheckpointError
from slimkit.core.io import atomic_write


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_snapshot(model: nn.Module, path: str | os.PathLike) -> str:
    """Write ``model`` atomically and return the file's SHA-256 (to record in the manifest)."""
    atomic_write(path, lambda f: torch.save(model, f))
    return file_sha256(path)


def load_snapshot(path: str | os.PathLike, sha256: str) -> nn.Module:
    """Load a snapshot written by :func:`save_snapshot`, refusing any file whose hash differs."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: snapshot missing; cannot resume from it")
    actual = file_sha256(path)
    if actual != sha256:
        raise CheckpointError(f"{path}: checksum differs from the run manifest; refusing to unpickle it")
    model = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"{path}: does not hold a model")
    return model
