"""What a finished (or interrupted) recipe run folder records, read back for the report: nothing is run or trained.

Reads ``manifest.json`` and ``summary.json``, and the stage snapshots (ordinary model files: nothing in them is
imported or unpickled). Layer widths come from the snapshots' tensor shapes alone; per-stage params and MACs need
the model rebuilt (a user's own architecture needs its ``factory``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimkit.core.errors import ConfigError

INPUT_PREFIX = "__slimkit__.signature.input."  # example inputs stored with a snapshot (see state/signature.py)


@dataclass
class RunFolder:
    """A run folder as recorded: the manifest, the summary (None until the run finished), the recipe's name."""

    path: Path
    manifest: dict[str, Any]
    summary: dict[str, Any] | None
    name: str
    stages: list[dict[str, Any]] = field(default_factory=list)

    def done(self) -> list[dict[str, Any]]:
        return [s for s in self.stages if s.get("status") == "done" and s.get("file")]

    def reference_file(self) -> Path | None:
        """The "before" snapshot: the reference (model before the first compressing stage), else the initial one."""
        for key in ("reference", "initial"):
            entry = self.manifest.get(key)
            if isinstance(entry, dict) and entry.get("file") and (self.path / entry["file"]).is_file():
                return self.path / entry["file"]
        return None

    def final_file(self) -> Path | None:
        done = self.done()
        return self.path / done[-1]["file"] if done else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: not readable JSON ({err})") from None


def open_run(run_dir: str | Path) -> RunFolder:
    """Read a run folder's records.

    Raises:
        ConfigError: naming the folder or file when it is not a slimkit run folder.
    """
    path = Path(run_dir)
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise ConfigError(f"{path}: not a run folder (no manifest.json); give the folder `slimkit compress` wrote")
    manifest = _read_json(manifest_path)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("stages"), list):
        raise ConfigError(f"{manifest_path}: not a slimkit run manifest (no 'stages' list)")
    summary_path = path / "summary.json"
    summary = _read_json(summary_path) if summary_path.is_file() else None
    stages = [s for s in manifest["stages"] if isinstance(s, dict)]
    return RunFolder(path, manifest, summary, str(manifest.get("recipe") or path.name), stages)


def layer_widths(snapshot: Path) -> dict[str, int]:
    """Output channels (features) of every Linear/Conv-like weight in a snapshot, from tensor shapes only."""
    from slimkit.state.file import read_model_file

    _, tensors, _ = read_model_file(snapshot)
    return {key.removesuffix(".weight"): int(t.shape[0]) for key, t in tensors.items()
            if key.endswith(".weight") and t.dim() >= 2 and not key.startswith("__slimkit__")}


def _example_inputs(header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    signature = header.get("signature") or {}
    inputs = []
    for i, spec in enumerate(signature.get("inputs") or []):
        stored = tensors.get(f"{INPUT_PREFIX}{i}")
        if stored is None:
            dtype = getattr(torch, spec["dtype"])
            stored = (torch.zeros if dtype.is_floating_point else torch.ones)(spec["shape"], dtype=dtype)
        inputs.append(stored)
    if not inputs:
        raise ConfigError("the snapshot records no example input shapes")
    return tuple(inputs)


def snapshot_counts(snapshot: Path, factory: Callable[..., nn.Module] | None = None) -> dict[str, float]:
    """Params, nonzero params and MACs of the model in ``snapshot``, profiled on its recorded example inputs."""
    from slimkit.profile import profile
    from slimkit.state.file import read_model_file, rebuild

    header, tensors, _ = read_model_file(snapshot)
    model = rebuild(header, tensors, source=str(snapshot), factory=factory, verify=False)
    report = profile(model, _example_inputs(header, tensors))
    return {"params": report.params, "nonzero_params": report.nonzero_params, "macs": report.macs}


def recorded_test_accuracy(metrics: dict[str, Any]) -> float | None:
    """The test accuracy a stage recorded (validation accuracies are left out: another split)."""
    value = metrics.get("accuracy")
    if metrics.get("split", "test") != "test" or not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return float(value) if math.isfinite(value) else None


def scalar_metrics(metrics: dict[str, Any], limit: int = 12) -> dict[str, Any]:
    """The metrics worth a table cell: numbers and short strings (lists, dicts and paths are left out)."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or key in ("summary", "plots"):
            continue
        if isinstance(value, (int, float)) or (isinstance(value, str) and len(value) <= 24 and "/" not in value):
            out[key] = value
        if len(out) >= limit:
            break
    return out
