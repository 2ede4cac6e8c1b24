"""Stage ``reconstruct``: ThiNet / LASSO channel selection with least-squares refit on calibration batches (no
training). Writes ``reconstruct.txt`` (per layer: channels, reconstruction error) and ``reconstruct.json``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from slimkit.core.config import check_ratio
from slimkit.core.io import atomic_write_bytes, atomic_write_json
from slimkit.prune.methods._common import on_device
from slimkit.prune.methods.reconstruction import reconstruct_prune
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext


@dataclass(frozen=True)
class ReconstructStageConfig:
    ratio: float = 0.5
    method: Literal["thinet", "lasso", "l1"] = "thinet"
    refit: bool = True
    calibration_batches: int = 8

    def __post_init__(self) -> None:
        check_ratio("ratio", self.ratio)
        if self.method not in ("thinet", "lasso", "l1"):
            raise ValueError(f"method must be one of thinet, lasso, l1; got {self.method!r}")
        if self.calibration_batches < 1:
            raise ValueError(f"calibration_batches must be >= 1, got {self.calibration_batches}")


@register_stage("reconstruct", ReconstructStageConfig, compresses=True)
def reconstruct_stage(ctx: StageContext, config: ReconstructStageConfig) -> dict[str, Any]:
    """Channel pruning without retraining: ThiNet or LASSO selection plus least-squares refit of the next layer."""
    ctx.freeze_reference()
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    inputs = on_device(tuple(ctx.example_inputs), ctx.model)
    calib = [on_device((x,), ctx.model) for x, _ in ctx.calibration_batches(config.calibration_batches)]
    report = reconstruct_prune(ctx.model, inputs, calib, ratio=config.ratio, method=config.method,
                               refit=config.refit)
    atomic_write_bytes(ctx.stage_dir / "reconstruct.txt", (report.table() + "\n").encode())
    atomic_write_json(ctx.stage_dir / "reconstruct.json", report.to_dict())
    return {"macs_reduction": report.macs_reduction, "layers": len(report.layers), "skipped": len(report.skipped)}
