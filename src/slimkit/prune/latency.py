"""Hardware-aware selection: prune until the latency measured on the target device reaches a target.

Each candidate (a global ratio, found by bisection) is applied to the model inside a transaction, timed with
:func:`slimkit.profile.measure_latency` on ``latency_device`` at ``latency_batch_size``, then rolled back, so no
copy of the model is needed and what is timed is exactly what will be applied.
"""

from __future__ import annotations

from typing import Any

import torch

from slimkit.core.transaction import transaction
from slimkit.graph.groups import ChannelGraph
from slimkit.prune.apply import apply_removal
from slimkit.prune.config import PruneConfig


class _Rollback(Exception):
    pass


def _batch(inputs: tuple, batch_size: int) -> tuple:
    out = []
    for t in inputs:
        if isinstance(t, torch.Tensor) and t.ndim > 0:
            reps = -(-batch_size // t.shape[0])
            t = t.repeat(reps, *([1] * (t.ndim - 1)))[:batch_size]
        out.append(t)
    return tuple(out)


def measured_latency_ms(graph: ChannelGraph, removed: torch.Tensor, example_inputs: tuple, config: PruneConfig,
                        *, repeats: int = 10) -> float:
    """Median latency of the model with ``removed`` channels pruned (the model is restored afterwards)."""
    from slimkit.profile import measure_latency

    inputs = _batch(example_inputs, config.latency_batch_size)
    model = graph.model
    result: dict[str, float] = {}

    def time_it() -> None:
        report = measure_latency(model, inputs, device=config.latency_device, warmup=3, repeats=repeats)
        result["ms"] = report.median_ms

    if not bool(removed.any()):
        time_it()
        return result["ms"]
    try:
        with transaction(model):
            apply_removal(graph, removed, example_inputs)
            time_it()
            raise _Rollback
    except _Rollback:
        pass
    return result["ms"]


def select_for_latency(graph: ChannelGraph, scores: torch.Tensor, groups: list[Any], config: PruneConfig,
                       example_inputs: tuple, steps: int = 7) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    """Smallest global ratio whose measured latency is at most ``config.target_latency_ms``.

    Returns the removal mask and the (ratio, latency_ms) pairs measured on the way.
    """
    from slimkit.prune.select import select_channels

    target = float(config.target_latency_ms)  # type: ignore[arg-type]
    none = torch.zeros(graph.num_channels, dtype=torch.bool)
    trail = [(0.0, measured_latency_ms(graph, none, example_inputs, config))]
    if trail[0][1] <= target:
        return none, trail
    lo, hi = 0.0, config.max_group_ratio
    best = select_channels(graph, scores, groups, config, hi)
    trail.append((hi, measured_latency_ms(graph, best, example_inputs, config)))
    if trail[-1][1] > target:
        return best, trail  # unreachable within the per-group limits: prune as far as allowed
    for _ in range(steps):
        mid = (lo + hi) / 2
        removed = select_channels(graph, scores, groups, config, mid)
        ms = measured_latency_ms(graph, removed, example_inputs, config)
        trail.append((mid, ms))
        if ms <= target:
            hi, best = mid, removed
        else:
            lo = mid
    return best, trail
