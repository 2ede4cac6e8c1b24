"""Run a recipe's stages in order inside a run folder, resumable after an interruption.

Run folder layout::

    RUN_DIR/
      .slimkit-run         marker: slimkit created this folder (only such folders may be emptied by --overwrite)
      recipe.yaml          the recipe as resolved (defaults filled in)
      manifest.json        stage status, metrics, snapshot checksums (rewritten atomically after each stage)
      initial.pt           the model before any stage          (snapshots: see recipe/snapshot.py)
      reference.pt         the model before the first compressing stage (teacher, "before" column)
      NN-STAGE/            one folder per stage: model.pt, metrics.json, plots, training checkpoints
      summary.json, summary.txt   the before/after comparison
      report.html, plots/  the run's report: one self-contained page and its PNGs (slimkit report RUN_DIR redraws)
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from slimkit.core.io import atomic_write_bytes, atomic_write_json
from slimkit.recipe._registry import load_stages
from slimkit.recipe.build import (
    build_data,
    build_model,
    check_model_runs,
    example_inputs_for,
    model_factory,
    resolve_device,
)
from slimkit.recipe.check import check_stages
from slimkit.recipe.context import StageContext
from slimkit.recipe.run_dir import check_run_dir, start_fresh
from slimkit.recipe.schema import Recipe
from slimkit.recipe.snapshot import load_snapshot, save_snapshot
from slimkit.recipe.summary import summarize


@dataclass
class RunResult:
    run_dir: Path
    stages: list[dict[str, Any]]
    summary: dict[str, Any]
    table: str
    model: torch.nn.Module


def _silent(*_: Any) -> None:
    return None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _write_report(run_dir: Path, factory: Any, echo: Any) -> None:
    """``report.html`` and its plots; a report that cannot be written never fails the run it reports on."""
    from slimkit.report import write_html_report

    try:
        echo(f"report: {write_html_report(run_dir, factory=factory)}")
    except Exception as err:  # noqa: BLE001 - the run's results are already saved
        echo(f"report.html not written ({type(err).__name__}: {err}); retry with: slimkit report {run_dir}")


def _stage_dir(run_dir: Path, index: int, name: str) -> Path:
    return run_dir / f"{index:02d}-{name}"


@dataclass
class Preflight:
    """What :func:`preflight` found: the data, the model the first pending stage receives, and the run state.

    Attributes:
        manifest: the manifest being resumed (None for a fresh run).
        start: index of the first stage still to run.
    """

    data: Any
    model: torch.nn.Module
    inputs: tuple[torch.Tensor, ...]
    device: torch.device
    factory: Any
    manifest: dict[str, Any] | None
    reference: torch.nn.Module | None
    start: int


def preflight(
    recipe: Recipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    recipe_path: str | os.PathLike | None = None,
) -> Preflight:
    """Check everything a run of ``recipe`` in ``run_dir`` could fail on before its first stage; change nothing.

    The run folder can be used as asked (:func:`check_run_dir`), the data opens, the model builds (or the snapshot
    to resume from loads) and runs on an example input, and every pending stage's names and options resolve
    against that model (:func:`slimkit.recipe.check.check_stages`). ``slimkit compress --check`` runs this.

    Raises:
        ConfigError / DataError / CheckpointError: naming the field, file or folder.
    """
    run_dir = Path(run_dir)
    manifest = check_run_dir(recipe, run_dir, resume=resume, overwrite=overwrite,
                             recipe_path=recipe.source if recipe_path is None else recipe_path)
    _seed_everything(recipe.seed)
    data = build_data(recipe.data, seed=recipe.seed)
    device = resolve_device(recipe.device)
    factory = model_factory(recipe.model)  # the recipe is the user's code: it may name their factory
    inputs = example_inputs_for(data)
    reference = None
    start = 0
    if manifest is None:
        model = build_model(recipe.model, data)
        check_model_runs(model, inputs, where="model")
    else:
        done = [s for s in manifest["stages"] if s["status"] == "done"]
        source = done[-1] if done else manifest["initial"]
        model = load_snapshot(run_dir / source["file"], source["sha256"], factory=factory)
        ref = manifest.get("reference")
        reference = load_snapshot(run_dir / ref["file"], ref["sha256"], factory=factory) if ref else None
        start = next((i for i, s in enumerate(manifest["stages"]) if s["status"] != "done"), len(recipe.stages))
    check_stages(recipe, model, start=start)
    return Preflight(data, model, inputs, device, factory, manifest, reference, start)


def run_recipe(
    recipe: Recipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    echo: Any = print,
    recipe_path: str | os.PathLike | None = None,
) -> RunResult:
    """Run every stage of ``recipe`` in ``run_dir`` and print the before/after summary.

    Everything that can fail before the first stage is checked first (:func:`preflight`), so a bad option of a
    late stage stops the run before any training and before ``overwrite`` empties anything.

    Args:
        recipe: a validated recipe (see :func:`slimkit.recipe.load_recipe`).
        run_dir: the run folder; created if absent.
        resume: continue an interrupted run from its last finished stage (and mid-stage training checkpoint).
        overwrite: empty a non-empty run folder instead of refusing; only a folder slimkit created (it holds
            a ``.slimkit-run`` marker), never the current directory or one above it, the root, the home
            folder, or a folder holding the recipe file.
        echo: where progress lines go (``print`` by default).
        recipe_path: the recipe file being run, which ``overwrite`` must not delete (default:
            ``recipe.source``).

    Raises:
        ConfigError: the run folder cannot be used as asked (see ``resume`` and ``overwrite``), or a field of the
            recipe does not resolve (see :func:`preflight`).
    """
    run_dir = Path(run_dir)
    rank = int(os.environ.get("RANK", "0") or 0)
    if rank > 0:
        # under torchrun every rank runs the recipe (training is data-parallel inside fit); rank 0 owns the run
        # folder and the console, the others keep their own files apart so no rank overwrites another's
        named = run_dir if run_dir.name not in ("", ".", "..") else run_dir.resolve()
        run_dir = named.with_name(f"{named.name}.rank{rank}")
        echo = _silent
    registry = load_stages()
    checked = preflight(recipe, run_dir, resume=resume, overwrite=overwrite, recipe_path=recipe_path)
    data, device, factory, inputs = checked.data, checked.device, checked.factory, checked.inputs
    model, manifest, reference = checked.model, checked.manifest, checked.reference

    if manifest is None:
        start_fresh(recipe, run_dir)
        manifest = {
            "recipe": recipe.name,
            "fingerprint": recipe.fingerprint(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "status": "running",
            "initial": {"file": "initial.pt", "sha256": save_snapshot(model, run_dir / "initial.pt",
                                                                     example_inputs=inputs)},
            "reference": None,
            "stages": [{"name": s.name, "type": s.type, "status": "pending"} for s in recipe.stages],
        }
        atomic_write_bytes(run_dir / "recipe.yaml", yaml.safe_dump(recipe.to_dict(), sort_keys=False).encode())
        atomic_write_json(run_dir / "manifest.json", manifest)
    else:
        echo(f"resuming {run_dir}: {checked.start}/{len(recipe.stages)} stages already done")

    ctx = StageContext(
        model=model.to(device),
        data=data,
        example_inputs=example_inputs_for(data),
        run_dir=run_dir,
        stage_dir=run_dir,
        device=device,
        reference=reference,
        seed=recipe.seed,
    )
    ctx.history = [s.get("metrics", {}) for s in manifest["stages"] if s["status"] == "done"]

    for index, spec in enumerate(recipe.stages):
        entry = manifest["stages"][index]
        if entry["status"] == "done":
            continue
        stage_type = registry.get(spec.type)
        ctx.stage_dir = _stage_dir(run_dir, index, spec.name)
        ctx.stage_dir.mkdir(parents=True, exist_ok=True)
        if stage_type.compresses and manifest["reference"] is None:
            reference = ctx.freeze_reference()
            manifest["reference"] = {"file": "reference.pt", "sha256": save_snapshot(
                reference, run_dir / "reference.pt", example_inputs=ctx.example_inputs)}
        echo(f"[{index + 1}/{len(recipe.stages)}] {spec.name} ({spec.type})")
        _seed_everything(recipe.seed + index)
        start = time.perf_counter()
        metrics = stage_type.run(ctx, spec.config) or {}
        seconds = time.perf_counter() - start
        ctx.model = ctx.model.to(device)
        snapshot = f"{ctx.stage_dir.name}/model.pt"
        entry.update(
            status="done",
            file=snapshot,
            sha256=save_snapshot(ctx.model, run_dir / snapshot, example_inputs=ctx.example_inputs),
            metrics=metrics,
            seconds=round(seconds, 2),
        )
        atomic_write_json(ctx.stage_dir / "metrics.json", metrics)
        atomic_write_json(run_dir / "manifest.json", manifest)
        ctx.history.append(metrics)
        shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        echo("    " + ", ".join(f"{k}={v:.4g}" for k, v in list(shown.items())[:8]) + f"  ({seconds:.1f}s)")

    before = ctx.reference
    if before is None:
        before = load_snapshot(run_dir / manifest["initial"]["file"], manifest["initial"]["sha256"],
                               factory=factory)
    summary, table = summarize(before.to(device), ctx, recipe.report, manifest["stages"])
    manifest["status"] = "done"
    atomic_write_json(run_dir / "manifest.json", manifest)
    atomic_write_json(run_dir / "summary.json", summary)
    atomic_write_bytes(run_dir / "summary.txt", (table + "\n").encode())
    echo(table)
    if rank == 0:
        _write_report(run_dir, factory, echo)
    return RunResult(run_dir, manifest["stages"], summary, table, ctx.model)
