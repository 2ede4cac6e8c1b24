"""The report's own figures of a run folder (PNG, through :mod:`slimkit.report.plots`).

Each function returns the path written, or None when the run holds nothing to draw (no stage pruned, no
accuracy recorded, ...). Plots that stages drew themselves (sensitivity curves, trajectories, sparsity per layer)
are not redrawn: the report embeds them from the stage folders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from slimkit.report.plots import plot_bars, plot_curves
from slimkit.report.run_folder import (
    RunFolder,
    layer_widths,
    recorded_test_accuracy,
    snapshot_counts,
)

#: summary keys drawn as after / before, with their labels
RATIO_KEYS = (("params", "params"), ("nonzero_params", "nonzero params"), ("macs", "MACs"), ("size_bytes", "size"))


@dataclass(frozen=True)
class StagePoint:
    """One model of the run: the "before" model or a finished stage's, with what is known of it."""

    label: str
    params: float | None
    macs: float | None
    accuracy: float | None
    stage: int | None = None  # index in the manifest's stages (None: the "before" model)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def summary_figure(run: RunFolder, path: Path) -> Path | None:
    """Bars of after / before for params, MACs, size and latency (1 = unchanged); simulated ones are labelled."""
    if run.summary is None:
        return None
    before, after = run.summary.get("before") or {}, run.summary.get("after") or {}
    marks = run.summary.get("marks") or {}
    keys = list(RATIO_KEYS) + [(k, f"latency bs{k.rsplit('bs', 1)[1]}") for k in sorted(before)
                               if k.startswith("latency_ms")]
    labels, values = [], []
    for key, label in keys:
        b, a = _number(before.get(key)), _number(after.get(key))
        if key == "nonzero_params" and a == _number(after.get("params")):
            continue
        if b and a is not None:
            labels.append(f"{label} [{marks[key]}]" if key in marks else label)
            values.append(a / b)
    if not values:
        return None
    return plot_bars({"after / before": values}, labels, path, ylabel="after / before (1 = unchanged)",
                     title="before -> after (lower is smaller or faster)")


def channels_figure(run: RunFolder, path: Path) -> Path | None:
    """Output channels of each Linear/Conv layer before and after, when a stage changed any width."""
    reference, final = run.reference_file(), run.final_file()
    if reference is None or final is None:
        return None
    before, after = layer_widths(reference), layer_widths(final)
    names = [name for name in before if name in after]
    if not any(before[name] != after[name] for name in names):
        return None
    return plot_bars({"before": [before[n] for n in names], "after": [after[n] for n in names]}, names, path,
                     ylabel="output channels", title="channels per layer")


def stage_points(run: RunFolder, factory: Callable[..., nn.Module] | None = None) -> list[StagePoint]:
    """The "before" model and each finished stage's: params and MACs from its snapshot, its recorded accuracy.

    Raises whatever rebuilding a snapshot raises (a user's architecture without its factory, say): the caller
    reports it.
    """
    reference = run.reference_file()
    before_acc = _number(((run.summary or {}).get("before") or {}).get("accuracy"))
    points = []
    ref_sha = (run.manifest.get("reference") or {}).get("sha256")
    if reference is not None and not any(ref_sha and s.get("sha256") == ref_sha for s in run.done()):
        # (when the reference is a stage's own snapshot, that stage's point stands for it)
        counts = snapshot_counts(reference, factory)
        points.append(StagePoint("before (reference)", counts["params"], counts["macs"], before_acc))
    for index, entry in enumerate(run.stages):
        if entry.get("status") != "done" or not entry.get("file"):
            continue
        counts = snapshot_counts(run.path / entry["file"], factory)
        points.append(StagePoint(str(entry.get("name")), counts["params"], counts["macs"],
                                 recorded_test_accuracy(entry.get("metrics") or {}), index))
    return points


def stages_figure(points: list[StagePoint], path: Path) -> Path | None:
    """Params and MACs of each stage's model as a fraction of the "before" model's, and its test accuracy."""
    if len(points) < 2 or not points[0].params or not points[0].macs:
        return None
    nan = float("nan")
    base = points[0]  # the reference, or the first stage's model
    series = {
        "params / before": [p.params / base.params if p.params is not None else nan for p in points],
        "MACs / before": [p.macs / base.macs if p.macs is not None else nan for p in points],
        "test accuracy": [p.accuracy if p.accuracy is not None else nan for p in points],
    }
    return plot_bars(series, [p.label for p in points], path, ylabel="fraction of before; accuracy",
                     title="model after each stage")


def accuracy_vs_macs_figure(points: list[StagePoint], path: Path) -> Path | None:
    """Test accuracy against MACs for the models whose accuracy a stage recorded, in stage order."""
    known = [p for p in points if p.accuracy is not None and p.macs is not None]
    if len(known) < 2:
        return None
    order = " -> ".join(p.label for p in known) if len(known) <= 5 else f"{len(known)} models in stage order"
    return plot_curves({"stages in order": ([p.macs for p in known], [p.accuracy for p in known])}, path,
                       xlabel="MACs", ylabel="test accuracy", title=f"accuracy vs MACs ({order})")


def accuracy_vs_size_figure(run: RunFolder, path: Path) -> Path | None:
    """Test accuracy against size, before and after (the after-size is the integer file's when one exists)."""
    if run.summary is None:
        return None
    before, after = run.summary.get("before") or {}, run.summary.get("after") or {}
    marks = run.summary.get("marks") or {}
    xs = [_number(before.get("size_bytes")), _number(after.get("size_bytes"))]
    ys = [_number(before.get("accuracy")), _number(after.get("accuracy"))]
    if None in xs or None in ys:
        return None
    tags = sorted({marks[k] for k in ("size_bytes", "accuracy") if k in marks})
    label = "before -> after" + (f" [{', '.join(tags)}]" if tags else "")
    return plot_curves({label: ([x / 1024 for x in xs], ys)}, path, xlabel="size (KiB)",  # type: ignore[operator]
                       ylabel="test accuracy", title=f"accuracy vs size ({label})")
