"""Stages ``train``, ``finetune`` (training after compression; distills from the reference when asked) and
``evaluate``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext
from slimkit.train import TrainConfig


def train_and_report(ctx: StageContext, config: TrainConfig, *, teacher: Any = None, hooks: Any = ()) -> dict[str, Any]:
    """Train ``ctx.model`` and return the metrics every training-like stage records."""
    result = ctx.fit(config, teacher=teacher, hooks=hooks)
    metrics = ctx.evaluate(split="test")
    last = result.history[-1] if result.history else {}
    return {
        "accuracy": metrics["accuracy"],
        "loss": metrics["loss"],
        "val_accuracy": last.get("val_accuracy"),
        "epochs": len(result.history),
        "images_per_s": last.get("images_per_s"),
    }


@register_stage("train", TrainConfig)
def train_stage(ctx: StageContext, config: TrainConfig) -> dict[str, Any]:
    """Train the model from its current weights with the given schedule."""
    return train_and_report(ctx, config)


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig):
    """Training to recover accuracy after compression: shorter and gentler by default.

    With ``distill_alpha > 0`` the teacher is the model before the first compressing stage.
    """

    epochs: int = 1
    lr: float = 0.01


@register_stage("finetune", FinetuneConfig)
def finetune_stage(ctx: StageContext, config: FinetuneConfig) -> dict[str, Any]:
    """Recover accuracy after compression; distills from the reference model when ``distill_alpha > 0``."""
    teacher = ctx.freeze_reference() if config.distill_alpha > 0 else None
    return train_and_report(ctx, config, teacher=teacher)


@dataclass(frozen=True)
class EvaluateConfig:
    split: Literal["test", "val"] = "test"


@register_stage("evaluate", EvaluateConfig)
def evaluate_stage(ctx: StageContext, config: EvaluateConfig) -> dict[str, Any]:
    """Accuracy and loss of the current model on the test (or validation) split."""
    metrics = ctx.evaluate(split=config.split)
    return {"accuracy": metrics["accuracy"], "loss": metrics["loss"], "split": config.split}
