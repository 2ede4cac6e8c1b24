"""Stage ``sensitivity``: prune each layer alone at a sweep of ratios, then (optionally) prune with the derived
per-layer ratios for an accuracy drop or a MACs budget.

Writes ``sensitivity.png`` (accuracy vs ratio per layer), ``sensitivity.txt`` and ``sensitivity.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slimkit.core.config import check_ratio
from slimkit.core.io import atomic_write_bytes, atomic_write_json
from slimkit.prune.methods._common import on_device
from slimkit.prune.methods.sensitivity import sensitivity_analysis
from slimkit.prune.structured import prune_channels
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext


@dataclass(frozen=True)
class SensitivityStageConfig:
    """Attributes:
        ratios: the sweep per layer.
        importance: which channels go first in each trial.
        max_drop: prune every layer at the largest ratio keeping val accuracy within this of the baseline.
        macs_reduction: or prune with the per-layer ratios meeting this MACs factor at the smallest drop.
        Neither: analysis only (the model is unchanged).
        recalibrate_batches: re-estimate BatchNorm statistics of every trial on this many training batches
            before evaluating it (0 = off).
    """

    ratios: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    importance: str = "l1"
    max_drop: float | None = None
    macs_reduction: float | None = None
    recalibrate_batches: int = 0

    def __post_init__(self) -> None:
        if self.recalibrate_batches < 0:
            raise ValueError(f"recalibrate_batches must be >= 0, got {self.recalibrate_batches}")
        object.__setattr__(self, "ratios", tuple(float(r) for r in self.ratios))
        for r in self.ratios:
            check_ratio("ratios", r)
        if self.max_drop is not None and self.macs_reduction is not None:
            raise ValueError("give at most one of max_drop, macs_reduction")
        if self.macs_reduction is not None and self.macs_reduction < 1:
            raise ValueError(f"macs_reduction must be >= 1, got {self.macs_reduction}")


@register_stage("sensitivity", SensitivityStageConfig, compresses=True)
def sensitivity_stage(ctx: StageContext, config: SensitivityStageConfig) -> dict[str, Any]:
    """Prune each group alone over a sweep of ratios, plot accuracy vs ratio, prune with the derived per-layer ratios."""
    ctx.freeze_reference()
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    inputs = on_device(tuple(ctx.example_inputs), ctx.model)
    report = sensitivity_analysis(ctx.model, inputs, ctx.data.val, ratios=config.ratios,
                                  importance=config.importance, plot_path=ctx.stage_dir / "sensitivity.png",
                                  recalibration_data=ctx.data.train if config.recalibrate_batches else None,
                                  recalibrate_batches=max(config.recalibrate_batches, 1))
    atomic_write_bytes(ctx.stage_dir / "sensitivity.txt", (report.table() + "\n").encode())
    metrics: dict[str, Any] = {"baseline_accuracy": report.baseline_accuracy, "groups": len(report.curves),
                               "plots": report.plots}
    ratios = None
    if config.max_drop is not None:
        ratios = report.ratios_for_drop(config.max_drop)
    elif config.macs_reduction is not None:
        ratios = report.ratios_for_macs(macs_reduction=config.macs_reduction)
    if ratios is not None:
        pruned = prune_channels(ctx.model, inputs, ratio=0.0, scope="local", importance=config.importance,
                                ratios=ratios)
        metrics.update(ratios=ratios, macs_reduction=pruned.macs_reduction, params_reduction=pruned.params_reduction)
    atomic_write_json(ctx.stage_dir / "sensitivity.json", {**report.to_dict(), "applied_ratios": ratios})
    return metrics
