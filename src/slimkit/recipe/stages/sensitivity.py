"""Stage ``sensitivity``: prune each layer alone at a sweep of ratios, then (optionally) prune with the derived
per-layer ratios for an accuracy drop or a MACs budget.

Writes ``sensitivity.png`` (accuracy vs ratio per layer), ``sensitivity.txt`` and ``sensitivity.json``. Its options
are :class:`~slimkit.prune.methods.sensitivity.SensitivityConfig`, which ``slimkit sensitivity`` takes too.
"""

from __future__ import annotations

from typing import Any

from slimkit.core.io import atomic_write_bytes, atomic_write_json
from slimkit.prune.methods._common import on_device
from slimkit.prune.methods.sensitivity import SensitivityConfig, sensitivity_analysis
from slimkit.prune.structured import prune_channels
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext


@register_stage("sensitivity", SensitivityConfig, compresses=True)
def sensitivity_stage(ctx: StageContext, config: SensitivityConfig) -> dict[str, Any]:
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
