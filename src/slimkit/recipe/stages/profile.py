"""Stage ``profile``: record params, MACs, FLOPs, size, activation memory and batch-1 latency of the model.

Writes the per-layer table to ``profile.txt`` (and the full report to ``profile.json``) in the stage folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from slimkit.core.io import atomic_write_bytes, atomic_write_json
from slimkit.core.modules import model_device
from slimkit.profile import measure_latency, profile
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext


@dataclass(frozen=True)
class ProfileStageConfig:
    """Options of the ``profile`` stage.

    Attributes:
        latency: also time batch-1 inference on the run's device.
        warmup: untimed passes before timing.
        repeats: timed passes (the median is recorded).
        num_threads: CPU threads while timing (``None``: torch's current setting).
    """

    latency: bool = True
    warmup: int = 10
    repeats: int = 50
    num_threads: int | None = None

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")


def _batch_one(inputs: tuple[Any, ...], device: torch.device) -> tuple[Any, ...]:
    return tuple(x[:1].to(device) if isinstance(x, torch.Tensor) and x.dim() > 0 else x for x in inputs)


@register_stage("profile", ProfileStageConfig)
def profile_stage(ctx: StageContext, config: ProfileStageConfig) -> dict[str, Any]:
    """Profile the current model at batch 1 and time it on ``ctx.device``."""
    inputs = _batch_one(tuple(ctx.example_inputs), model_device(ctx.model))
    report = profile(ctx.model, inputs)
    metrics: dict[str, Any] = {
        "params": report.params,
        "nonzero_params": report.nonzero_params,
        "macs": report.macs,
        "flops": report.flops,
        "size_bytes": report.size_bytes,
        "peak_activation_bytes": report.peak_activation_bytes,
    }
    if config.latency:
        latency = measure_latency(
            ctx.model, inputs, device=ctx.device, warmup=config.warmup, repeats=config.repeats,
            num_threads=config.num_threads,
        )
        metrics.update(latency_ms=latency.median_ms, latency_p10_ms=latency.p10_ms, latency_p90_ms=latency.p90_ms)
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(ctx.stage_dir / "profile.txt", (report.table() + "\n").encode())
    atomic_write_json(ctx.stage_dir / "profile.json", {**report.to_dict(), "metrics": metrics})
    return metrics
