"""Stage ``soft_filter``: soft filter pruning during training, then removal of the zeroed filters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slimkit.core.config import check_ratio
from slimkit.core.io import atomic_write_json
from slimkit.prune.importance import checked_importance
from slimkit.prune.methods._common import on_device
from slimkit.prune.methods.soft_filter import soft_filter_prune
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext


@dataclass(frozen=True)
class SoftFilterStageConfig:
    ratio: float = 0.3
    train: dict[str, Any] = field(default_factory=lambda: {"epochs": 10})
    importance: str = "filter_l2"
    round_to: int | None = None

    def __post_init__(self) -> None:
        check_ratio("ratio", self.ratio)
        checked_importance(self.importance)  # an unknown name fails here, listing the registered ones


@register_stage("soft_filter", SoftFilterStageConfig, compresses=True)
def soft_filter_stage(ctx: StageContext, config: SoftFilterStageConfig) -> dict[str, Any]:
    """Soft filter pruning: zero the weakest filters each epoch while they keep training, remove them at the end."""
    ctx.freeze_reference()
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    report = soft_filter_prune(ctx.model, on_device(tuple(ctx.example_inputs), ctx.model), ctx.data.train,
                               ratio=config.ratio, train=config.train, val_data=ctx.data.val,
                               importance=config.importance, round_to=config.round_to)
    atomic_write_json(ctx.stage_dir / "soft_filter.json", report.to_dict())
    return {"channels_removed": report.channels_removed, "macs_reduction": report.macs_reduction,
            "val_accuracy": report.accuracy_after}
