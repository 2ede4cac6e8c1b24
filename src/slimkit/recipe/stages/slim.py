"""Stage ``slim``: network slimming (sparsity training on BN scales, global threshold, removal, fine-tuning).

Writes ``slimming_gammas.png``, ``slimming_channels.png`` and ``slim.json`` to the stage folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slimkit.core.io import atomic_write_json
from slimkit.prune.methods._common import on_device
from slimkit.prune.methods.slimming import SlimmingConfig, network_slimming
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext


@dataclass(frozen=True)
class SlimStageConfig(SlimmingConfig):
    """:class:`slimkit.SlimmingConfig`; ``sparsity_train``/``finetune`` hold TrainConfig fields."""

    sparsity_train: dict[str, Any] | None = field(default_factory=lambda: {"epochs": 10})
    finetune: dict[str, Any] | None = field(default_factory=lambda: {"epochs": 5})


@register_stage("slim", SlimStageConfig, compresses=True)
def slim_stage(ctx: StageContext, config: SlimStageConfig) -> dict[str, Any]:
    """Network slimming: L1 sparsity training on BN scales, one global |gamma| threshold, removal, fine-tuning."""
    ctx.freeze_reference()
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    report = network_slimming(ctx.model, on_device(tuple(ctx.example_inputs), ctx.model), ctx.data.train, config,
                              val_data=ctx.data.val, plot_dir=ctx.stage_dir)
    atomic_write_json(ctx.stage_dir / "slim.json", report.to_dict())
    return {"channels_pruned": report.channels_pruned, "channels_before": report.channels_before,
            "channels_after": report.channels_after, "macs_reduction": report.macs_reduction,
            "val_accuracy": report.accuracy_after, "plots": report.plots}
