"""Stage ``sensitivity``: prune each layer alone at a sweep of ratios, then (optionally) prune with the derived
per-layer ratios for an accuracy drop or a MACs budget.

Writes ``sensitivity.png`` (accuracy vs ratio per layer), ``sensitivity.txt`` and ``sensitivity.json``. Its options
are :class:`~slimkit.prune.methods.sensitivity.SensitivityConfig`, which ``slimkit sensitivity`` takes too.
"""

from __future__ import annotations

from typing import Any

from slimkit.core.io import atomic_write_bytes, atomic_write_json
from slimkit.prune.methods._common import on_device
from slimkit.prune.methods.sensitivity import SensitivityConfig, run_sensitivity
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext


@register_stage("sensitivity", SensitivityConfig, compresses=True)
def sensitivity_stage(ctx: StageContext, config: SensitivityConfig) -> dict[str, Any]:
    """Prune each group alone over a sweep of ratios, plot accuracy vs ratio, prune with the derived per-layer ratios."""
    ctx.freeze_reference()
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    inputs = on_device(tuple(ctx.example_inputs), ctx.model)
    run = run_sensitivity(ctx.model, inputs, ctx.data.val, config, train_data=ctx.data.train,
                          plot_path=ctx.stage_dir / "sensitivity.png")
    report, ratios = run.report, run.ratios
    atomic_write_bytes(ctx.stage_dir / "sensitivity.txt", (report.table() + "\n").encode())
    metrics: dict[str, Any] = {"baseline_accuracy": report.baseline_accuracy, "groups": len(report.curves),
                               "plots": report.plots}
    if run.pruned is not None:
        metrics.update(ratios=ratios, macs_reduction=run.pruned.macs_reduction,
                       params_reduction=run.pruned.params_reduction)
    atomic_write_json(ctx.stage_dir / "sensitivity.json", {**report.to_dict(), "applied_ratios": ratios})
    return metrics
