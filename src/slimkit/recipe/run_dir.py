"""The run folder's safety rules: resume only a real run of the same recipe, empty only folders slimkit made.

``--overwrite`` may empty a non-empty folder only if it holds the ``.slimkit-run`` marker, and never the current
directory or a folder above it, the filesystem root, the home folder, or a folder holding the recipe file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from slimkit.core.errors import ConfigError
from slimkit.core.io import atomic_write_json
from slimkit.recipe.schema import Recipe, recipe_changes

RUN_MARKER = ".slimkit-run"


def _write_marker(run_dir: Path, recipe: Recipe) -> None:
    from slimkit import __version__

    atomic_write_json(run_dir / RUN_MARKER, {"created_by": "slimkit", "version": __version__, "recipe": recipe.name})


def _has_marker(run_dir: Path) -> bool:
    marker = run_dir / RUN_MARKER
    if marker.is_symlink() or not marker.is_file():
        return False
    try:
        content = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and content.get("created_by") == "slimkit"


def _protected_reason(run_dir: Path, recipe_path: str | os.PathLike | None) -> str | None:
    """Why ``--overwrite`` must never empty ``run_dir`` (None when it may)."""
    target = run_dir.resolve()
    cwd = Path.cwd().resolve()
    if target == Path(target.anchor):
        return "it is the filesystem root"
    if target == cwd:
        return "it is the current directory"
    if target in cwd.parents:
        return "it contains the current directory"
    home = Path.home().resolve()
    if target == home or target in home.parents:
        return "it is your home folder" if target == home else "it contains your home folder"
    if recipe_path is not None:
        typed = Path(os.path.abspath(run_dir))
        if target in Path(recipe_path).resolve().parents or typed in Path(os.path.abspath(recipe_path)).parents:
            return f"it contains the recipe file {recipe_path}"
    return None


def _empty_run_dir(run_dir: Path) -> None:
    """Remove what is inside ``run_dir`` (not the folder itself, which may be a link the user set up)."""
    for child in run_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _read_manifest(recipe: Recipe, run_dir: Path) -> dict[str, Any]:
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        raise ConfigError(f"{run_dir}: nothing to resume (no manifest.json); run without --resume")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ConfigError(
            f"{manifest_path}: cannot resume, the run manifest is not readable JSON ({err}); "
            "start a new run with --overwrite or another --run-dir"
        ) from None
    stages = manifest.get("stages") if isinstance(manifest, dict) else None
    if (
        not isinstance(stages, list)
        or len(stages) != len(recipe.stages)
        or not all(isinstance(s, dict) and "status" in s for s in stages)
        or not isinstance(manifest.get("initial"), dict)
    ):
        raise ConfigError(
            f"{manifest_path}: cannot resume, not a slimkit run manifest (expected 'initial' and one 'stages' "
            "entry per recipe stage); start a new run with --overwrite or another --run-dir"
        )
    return manifest


def _changed_fields(recipe: Recipe, run_dir: Path) -> str:
    """``stages[1].ratio: 0.5 -> 0.3; ...`` against the run folder's ``recipe.yaml`` ('' when unreadable)."""
    try:
        old = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return ""
    new = yaml.safe_load(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    changes = recipe_changes(old, new)
    shown = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6 else "")
    return f" ({shown})" if changes else ""


def check_run_dir(
    recipe: Recipe,
    run_dir: Path,
    *,
    resume: bool,
    overwrite: bool,
    recipe_path: str | os.PathLike | None = None,
) -> dict[str, Any] | None:
    """Return the manifest to resume from (or None for a fresh run), refusing to clobber a run silently.

    Reads only: nothing in ``run_dir`` changes here (see :func:`start_fresh`). ``overwrite`` may empty a non-empty
    folder only if slimkit created it (it holds the ``.slimkit-run`` marker), and never the current directory or a
    folder above it, the filesystem root, the home folder, or a folder holding the recipe file.

    Raises:
        ConfigError: the folder cannot be used as asked; a changed recipe on resume names the changed fields.
    """
    if resume:
        manifest = _read_manifest(recipe, run_dir)
        if manifest.get("fingerprint") != recipe.fingerprint():
            raise ConfigError(
                f"{run_dir}: the recipe changed since this run started{_changed_fields(recipe, run_dir)}; resume "
                "with the same recipe or start a new run with --overwrite"
            )
        return manifest
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: exists and is not a folder; choose another --run-dir")
    if _holds_files(run_dir):
        if not overwrite:
            raise ConfigError(f"{run_dir}: run folder is not empty; use --resume to continue it or --overwrite")
        reason = _protected_reason(run_dir, recipe_path)
        if reason is not None:
            raise ConfigError(f"{run_dir}: --overwrite will not empty this folder: {reason}; give another --run-dir")
        if not _has_marker(run_dir):
            raise ConfigError(
                f"{run_dir}: --overwrite only empties run folders slimkit created (they hold a {RUN_MARKER} file) "
                "and this one has none, so its files may be yours; give another --run-dir, or move or delete "
                "the folder yourself"
            )
    return None


def _holds_files(run_dir: Path) -> bool:
    return run_dir.is_dir() and any(child.name != RUN_MARKER for child in run_dir.iterdir())


def start_fresh(recipe: Recipe, run_dir: Path) -> None:
    """Empty the folder :func:`check_run_dir` allowed to be emptied, create and mark it."""
    try:
        if _holds_files(run_dir):
            _empty_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_marker(run_dir, recipe)
    except OSError as err:
        raise ConfigError(f"{run_dir}: cannot create the run folder ({err.strerror or err}); "
                          "give another --run-dir") from None
