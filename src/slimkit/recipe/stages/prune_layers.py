"""Stage ``prune_layers``: remove whole blocks (residual blocks, shape-preserving stages), least harmful first.

Writes the per-block table to ``prune_layers.txt`` and the report to ``prune_layers.json`` in the stage folder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from slimkit.core.io import atomic_write_bytes, atomic_write_json
from slimkit.prune.methods._common import on_device
from slimkit.prune.methods.layer_removal import prune_layers
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext


@dataclass(frozen=True)
class PruneLayersStageConfig:
    """Options of the ``prune_layers`` stage (give ``count`` or ``macs_reduction``).

    Attributes:
        count: blocks to remove.
        macs_reduction: or remove blocks until MACs fall by this factor.
        candidates: module names or globs to consider (default: every removable block).
        recalibrate_batches: re-estimate BatchNorm statistics of each trial and of the result on this many
            training batches (0 = off).
    """

    count: int | None = None
    macs_reduction: float | None = None
    candidates: tuple[str, ...] | None = None
    recalibrate_batches: int = 20

    def __post_init__(self) -> None:
        if (self.count is None) == (self.macs_reduction is None):
            raise ValueError("give exactly one of count, macs_reduction")
        if self.count is not None and self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")
        if self.macs_reduction is not None and self.macs_reduction <= 1:
            raise ValueError(f"macs_reduction must be > 1, got {self.macs_reduction}")
        if self.recalibrate_batches < 0:
            raise ValueError(f"recalibrate_batches must be >= 0, got {self.recalibrate_batches}")


@register_stage("prune_layers", PruneLayersStageConfig, compresses=True)
def prune_layers_stage(ctx: StageContext, config: PruneLayersStageConfig) -> dict[str, Any]:
    """Score each removable block on the validation split, then remove the least harmful ones in place."""
    ctx.freeze_reference()
    report = prune_layers(
        ctx.model, on_device(tuple(ctx.example_inputs), ctx.model), ctx.data.val, count=config.count,
        macs_reduction=config.macs_reduction, candidates=list(config.candidates) if config.candidates else None,
        recalibration_data=ctx.data.train if config.recalibrate_batches else None,
        recalibrate_batches=max(config.recalibrate_batches, 1), progress=False,
    )
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(ctx.stage_dir / "prune_layers.txt", (report.table() + "\n").encode())
    atomic_write_json(ctx.stage_dir / "prune_layers.json", {**asdict(report), "macs_reduction": report.macs_reduction})
    return {"removed": report.removed, "macs_reduction": report.macs_reduction,
            "params_after": report.params_after, "accuracy_after": report.accuracy_after}
