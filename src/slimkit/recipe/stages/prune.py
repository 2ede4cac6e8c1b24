"""Stage ``prune``: remove channels (structured pruning) from the current model, atomically.

Writes the per-group table to ``prune.txt`` and the report to ``prune.json`` in the stage folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from slimkit.core.io import atomic_write_bytes, atomic_write_json
from slimkit.core.modules import model_device
from slimkit.prune.config import Aggregate, Normalize, Scope
from slimkit.prune.structured import prune_channels
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext


@dataclass(frozen=True)
class PruneStageConfig:
    """Options of the ``prune`` stage: the fields of :class:`slimkit.PruneConfig`, plus data for the criteria.

    Attributes:
        calibration_batches: training batches used by ``taylor`` (gradients) and ``apoz`` (activations).
    """

    ratio: float = 0.5
    importance: str = "l1"
    scope: Scope = Scope.GLOBAL
    normalize: Normalize = Normalize.MEAN
    aggregate: Aggregate = Aggregate.MEAN
    ignore: tuple[str, ...] = ()
    ratios: dict[str, float] = field(default_factory=dict)
    target_macs: float | None = None
    macs_reduction: float | None = None
    target_params: float | None = None
    round_to: int | None = None
    min_channels: int = 1
    max_group_ratio: float = 0.9
    allow_inexact: bool = True
    strict: bool = False
    calibration_batches: int = 4

    def __post_init__(self) -> None:
        self.prune_config()  # validates every shared field
        if self.calibration_batches < 1:
            raise ValueError(f"calibration_batches must be >= 1, got {self.calibration_batches}")

    def prune_config(self) -> Any:
        from dataclasses import fields

        from slimkit.prune.config import PruneConfig

        names = {f.name for f in fields(PruneConfig)}
        return PruneConfig(**{f.name: getattr(self, f.name) for f in fields(self) if f.name in names})


def _on(inputs: tuple, device: torch.device) -> tuple:
    return tuple(x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs)


@register_stage("prune", PruneStageConfig, compresses=True)
def prune_stage(ctx: StageContext, config: PruneStageConfig) -> dict[str, Any]:
    """Prune ``ctx.model`` in place; the reference model is frozen first (the default distillation teacher)."""
    ctx.freeze_reference()
    device = model_device(ctx.model)
    inputs = _on(tuple(ctx.example_inputs), device)
    data = None
    if config.importance in ("taylor", "apoz"):
        batches = ctx.calibration_batches(config.calibration_batches)
        data = [(_on((x,), device)[0], y.to(device)) for x, y in batches]
        if config.importance == "apoz":
            inputs = (data[0][0],)
    report = prune_channels(ctx.model, inputs, config.prune_config(), importance_data=data)
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
