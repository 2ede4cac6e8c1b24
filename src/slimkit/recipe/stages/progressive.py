"""Stage ``progressive``: prune-finetune rounds (per-layer ratios chosen each round by default, ``scope: auto``) until
val accuracy would fall below ``target_accuracy``; keeps the last model meeting it. Writes ``trajectory.png`` and
``progressive.json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from slimkit.core.io import atomic_write_json
from slimkit.prune.importance import checked_importance, criterion_batches, criterion_needs
from slimkit.prune.methods._common import on_device
from slimkit.prune.methods._round_search import RoundSearchConfig
from slimkit.prune.methods.progressive import progressive_prune
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext


@dataclass(frozen=True)
class ProgressiveStageConfig:
    target_accuracy: float = 0.9
    step: float = 0.1
    max_rounds: int = 20
    finetune: dict[str, Any] = field(default_factory=lambda: {"epochs": 1})
    importance: str = "taylor"  # progressive_prune's defaults: the best measured (docs/benchmarks.md, progressive_global)
    scope: Literal["global", "local", "auto"] = "auto"
    round_to: int | None = None
    per_macs: bool = False
    min_step: float | None = None  # back-off floor: a failed round is retried at half the step down to this (None: step/4)
    calibration_batches: int = 4  # training batches for a criterion that needs data (taylor, apoz)
    search: dict[str, Any] = field(default_factory=dict)  # RoundSearchConfig fields of scope "auto"

    def __post_init__(self) -> None:
        if not 0 < self.step < 1:
            raise ValueError(f"step must be in (0, 1), got {self.step}")
        if not 0 <= self.target_accuracy <= 1:
            raise ValueError(f"target_accuracy must be in [0, 1], got {self.target_accuracy}")
        if self.max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {self.max_rounds}")
        checked_importance(self.importance)  # an unknown name fails here, listing the registered ones
        if self.scope not in ("global", "local", "auto"):
            raise ValueError(f"scope must be 'global', 'local' or 'auto', got {self.scope!r}")
        if self.min_step is not None and not 0 < self.min_step <= self.step:
            raise ValueError(f"min_step must be in (0, step={self.step}], got {self.min_step}")
        if self.calibration_batches < 1:
            raise ValueError(f"calibration_batches must be >= 1, got {self.calibration_batches}")
        RoundSearchConfig(**self.search)  # unknown or invalid fields fail here


@register_stage("progressive", ProgressiveStageConfig, compresses=True)
def progressive_stage(ctx: StageContext, config: ProgressiveStageConfig) -> dict[str, Any]:
    """Progressive pruning: remove a step of MACs per round, fine-tune, back off, stop before accuracy falls below the target."""
    ctx.freeze_reference()
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    data = None
    if criterion_needs(config.importance):  # the same batches rank every round (on the round's current model)
        batches = ctx.calibration_batches(criterion_batches(config.importance, config.calibration_batches))
        data = [on_device((x, y), ctx.model) for x, y in batches]
    report = progressive_prune(
        ctx.model, on_device(tuple(ctx.example_inputs), ctx.model), ctx.data.train, ctx.data.val,
        target_accuracy=config.target_accuracy, step=config.step, max_rounds=config.max_rounds,
        finetune=config.finetune, importance=config.importance, scope=config.scope, round_to=config.round_to,
        per_macs=config.per_macs, min_step=config.min_step, search=config.search, importance_data=data,
        plot_path=ctx.stage_dir / "trajectory.png")
    atomic_write_json(ctx.stage_dir / "progressive.json", report.to_dict())
    return {"target_accuracy": config.target_accuracy, "val_accuracy": report.final_accuracy,
            "macs_reduction": report.macs_reduction, "rounds": len(report.trajectory) - 1, "plots": report.plots}
