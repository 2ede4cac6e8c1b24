"""Stage ``prune``: remove channels (structured pruning) from the current model, atomically.

Writes the per-group table to ``prune.txt`` and the report to ``prune.json`` in the stage folder.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from slimkit.core.io import atomic_write_bytes, atomic_write_json
from slimkit.core.modules import model_device
from slimkit.prune.config import PruneConfig, per_sample_report, trace_setup
from slimkit.prune.importance import criterion_batches, criterion_needs
from slimkit.prune.structured import prune_channels
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext
from slimkit.train.bn_recalibration import recalibrate_bn


@dataclass(frozen=True)
class PruneStageConfig(PruneConfig):
    """Options of the ``prune`` stage: every field of :class:`slimkit.PruneConfig`, plus data the stage feeds.

    Attributes:
        calibration_batches: training batches handed to a criterion that needs data (``taylor``: gradients,
            ``apoz``: activations; see ``register_importance(needs=...)``) unless the criterion says how many
            (``importance: {name: taylor, batches: 8}``).
        recalibrate_batches: after the cut, re-estimate BatchNorm statistics on this many training batches
            (``slimkit.recalibrate_bn``; 0 = off). A freshly pruned network evaluated on stale statistics can
            score near chance; this costs forward passes only.
    """

    calibration_batches: int = 4
    recalibrate_batches: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.calibration_batches < 1:
            raise ValueError(f"calibration_batches must be >= 1, got {self.calibration_batches}")
        if self.recalibrate_batches < 0:
            raise ValueError(f"recalibrate_batches must be >= 0, got {self.recalibrate_batches}")

    def prune_config(self) -> PruneConfig:
        return PruneConfig(**{f.name: getattr(self, f.name) for f in fields(PruneConfig)})


def _on(inputs: tuple, device: torch.device) -> tuple:
    return tuple(x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs)


@register_stage("prune", PruneStageConfig, compresses=True)
def prune_stage(ctx: StageContext, config: PruneStageConfig) -> dict[str, Any]:
    """Prune ``ctx.model`` in place; the reference model is frozen first (the default distillation teacher)."""
    ctx.freeze_reference()
    device = model_device(ctx.model)
    inputs = _on(tuple(ctx.example_inputs), device)
    data = None
    needs = criterion_needs(config.importance)
    if needs:
        batches = ctx.calibration_batches(criterion_batches(config.importance, config.calibration_batches))
        data = [(_on((x,), device)[0], y.to(device)) for x, y in batches]
    inputs, traced_config, traced = trace_setup(inputs, config.prune_config(), data)
    report = per_sample_report(prune_channels(ctx.model, inputs, traced_config, importance_data=data), traced)
    if config.recalibrate_batches:
        recalibrate_bn(ctx.model, ctx.data.train, batches=config.recalibrate_batches, batch_size=ctx.batch_size,
                       seed=ctx.seed)
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(ctx.stage_dir / "prune.txt", (report.table(limit=1000) + "\n").encode())
    atomic_write_json(ctx.stage_dir / "prune.json", report.to_dict())
    return {
        "macs_before": report.macs_before,
        "macs_after": report.macs_after,
        "macs_reduction": report.macs_reduction,
        "params_before": report.params_before,
        "params_after": report.params_after,
        "params_reduction": report.params_reduction,
        "groups_pruned": sum(g.channels_after < g.channels_before for g in report.groups),
        "groups_untouched": len(report.skipped),
        "analysis_s": report.analysis_s,
    }
