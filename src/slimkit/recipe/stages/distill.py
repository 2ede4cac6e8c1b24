"""Stage ``distill``: recover accuracy after compression by learning from the model before compression.

The teacher is the run's reference (the model before the first compressing stage). The loss is the soft-target
distillation loss (Hinton et al.; ``distill_alpha``, ``distill_temperature``) plus, when ``hints`` names layers,
FitNets feature hints through learned 1x1 adapters (:class:`slimkit.distill.hints.HintHook`)::

    - {type: distill, epochs: 2, lr: 0.01, distill_alpha: 0.9, hints: {features.8: features.8}, hint_weight: 1.0}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from slimkit.distill.hints import HintHook
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext
from slimkit.recipe.stages.train import train_and_report
from slimkit.train import TrainConfig


@dataclass(frozen=True)
class DistillStageConfig(TrainConfig):
    """Training options of the recovery run plus the hint layers (student name -> teacher name)."""

    epochs: int = 1
    lr: float = 0.01
    distill_alpha: float = 0.9
    hints: dict[str, str] = field(default_factory=dict)
    hint_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hint_weight < 0:
            raise ValueError(f"hint_weight must be >= 0, got {self.hint_weight}")


@register_stage("distill", DistillStageConfig)
def distill_stage(ctx: StageContext, config: DistillStageConfig) -> dict[str, Any]:
    """Recover accuracy by distilling from the reference model: soft targets plus optional FitNets hints."""
    teacher = ctx.freeze_reference()
    train_config = TrainConfig(**{f.name: getattr(config, f.name) for f in dataclasses.fields(TrainConfig)})
    hooks = []
    if config.hints:
        hooks.append(HintHook(config.hints, weight=config.hint_weight, example_inputs=ctx.example_inputs))
    metrics = train_and_report(ctx, train_config, teacher=teacher, hooks=hooks)
    metrics["hint_layers"] = len(config.hints)
    return metrics
