"""Hardware-aware selection: prune until the latency measured on the target device reaches a target.

Each candidate (a global ratio, found by bisection) is applied to the model inside a transaction, timed with
:func:`slimkit.profile.measure_latency` on ``latency_device`` at ``latency_batch_size``, then rolled back, so no
copy of the model is needed and what is timed is exactly what will be applied.
"""

from __future__ import annotations

from typing import Any

import torch

from slimkit.core.forward import training_mode
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
            apply_removal(graph, removed, example_inputs, verify="never")  # timed, then rolled back
            time_it()
            raise _Rollback
    except _Rollback:
        pass
    return result["ms"]


def select_for_latency(graph: ChannelGraph, scores: torch.Tensor, groups: list[Any], config: PruneConfig,
                       example_inputs: tuple, steps: int = 7,
                       cost: torch.Tensor | None = None) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    """Smallest global ratio whose measured latency is at most the config's latency budget (``target_latency_ms``).

    Returns the removal mask and the (ratio, latency_ms) pairs measured on the way.
    """
    from slimkit.prune.select import select_channels

    target = config.effective_budget.value
    none = torch.zeros(graph.num_channels, dtype=torch.bool)
    trail = [(0.0, measured_latency_ms(graph, none, example_inputs, config))]
    if trail[0][1] <= target:
        return none, trail
    lo, hi = 0.0, config.max_group_ratio
    best = select_channels(graph, scores, groups, config, hi, cost)
    trail.append((hi, measured_latency_ms(graph, best, example_inputs, config)))
    if trail[-1][1] > target:
        return best, trail  # unreachable within the per-group limits: prune as far as allowed
    for _ in range(steps):
        mid = (lo + hi) / 2
        removed = select_channels(graph, scores, groups, config, mid, cost)
        ms = measured_latency_ms(graph, removed, example_inputs, config)
        trail.append((mid, ms))
        if ms <= target:
            hi, best = mid, removed
        else:
            lo = mid
    return best, trail


def layer_latency_ms(model: torch.nn.Module, example_inputs: tuple, config: PruneConfig,
                     *, repeats: int = 5) -> dict[int, float]:
    """Median time of every leaf module's forward on ``latency_device`` at ``latency_batch_size``, keyed by id."""
    import time

    device = torch.device(config.latency_device)
    inputs = tuple(t.to(device) if isinstance(t, torch.Tensor) else t
                   for t in _batch(example_inputs, config.latency_batch_size))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    samples: dict[int, list[float]] = {}
    starts: dict[int, float] = {}
    leaves = [m for m in model.modules() if not list(m.children())]

    def pre(m: torch.nn.Module, args: Any) -> None:
        sync()
        starts[id(m)] = time.perf_counter()

    def post(m: torch.nn.Module, args: Any, out: Any) -> None:
        sync()
        samples.setdefault(id(m), []).append((time.perf_counter() - starts[id(m)]) * 1e3)

    handles = [h for m in leaves for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    try:
        with torch.no_grad(), training_mode(model, False):
            model(*inputs)
            samples.clear()
            for _ in range(repeats):
                model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return {k: float(torch.tensor(v).median()) for k, v in samples.items()}


def latency_per_channel(graph: ChannelGraph, example_inputs: tuple, config: PruneConfig) -> torch.Tensor:
    """Milliseconds each channel's removal saves, from per-layer latency shared evenly over the sliced dim.

    Per-layer latency is measured on ``latency_device`` at ``latency_batch_size`` (on the CPU at the traced batch
    size, the compute time of each module's ops recorded during tracing is used: no extra forward passes).

    A layer counts once per sliced dim (a conv's outputs and its inputs; a BatchNorm once), so a channel that
    slices big, slow layers at high resolution is cheap to keep in MACs terms but expensive in time. Modules
    without weights (activations, a block's residual add) share their time among the channels their ops
    produced: at batch 1 on a CPU these memory-bound ops are a large part of the latency but no part of the MACs.
    """
    first = next((t for t in example_inputs if isinstance(t, torch.Tensor)), None)
    traced_here = (config.latency_device == "cpu" and first is not None and first.device.type == "cpu"
                   and first.ndim > 0 and first.shape[0] == config.latency_batch_size and graph.module_ms)
    # on the CPU at the traced batch size, the op times taken while tracing are the per-layer measurement
    per_module = graph.module_ms if traced_here else layer_latency_ms(graph.model, example_inputs, config)
    saving = torch.zeros(graph.num_channels, dtype=torch.float64)
    seen: set[tuple[int, int]] = set()
    weighted: set[int] = set()
    for o in graph.occurrences:
        module = graph.locations[o.tensor][0][1]
        weighted.add(id(module))
        ms = per_module.get(id(module))
        if ms is None or (id(module), o.dim) in seen:
            continue
        seen.add((id(module), o.dim))
        share = torch.full((len(o.ids),), ms / len(o.ids), dtype=torch.float64)
        saving.index_add_(0, graph.comp[o.ids], share)
    for key, fields in graph.module_channels.items():
        ms = per_module.get(key)
        if ms is None or key in weighted or not fields:
            continue
        ids = torch.cat(fields)
        comps = graph.comp[ids[ids >= 0]]
        if comps.numel():
            saving.index_add_(0, comps, torch.full((comps.numel(),), ms / comps.numel(), dtype=torch.float64))
    return saving.float()


def latency_per_budget_unit(graph: ChannelGraph, ms_saved: torch.Tensor, budget: str) -> torch.Tensor:
    """Milliseconds each channel saves per MAC (``budget="macs"``) or parameter (``"params"``) it saves.

    Under a MACs budget the cut is fixed in MACs, so the channels worth removing for speed are those that save
    the most time per MAC: the ones feeding BatchNorms, activations and depthwise convs at high resolution,
    whose time is large next to their MACs. Ranking by time per channel instead removes the channels heavy in
    both, and the latency falls no faster than the MACs. Channels that save no budget at all are ranked as
    the median.
    """
    macs, params = graph.savings_per_channel()
    unit = macs if budget == "macs" else params
    density = ms_saved.double() / unit.clamp_min(1e-12)
    has = (unit > 0) & (ms_saved > 0)
    fill = density[has].median() if bool(has.any()) else torch.tensor(1.0, dtype=torch.float64)
    return torch.where(unit > 0, density, fill).float()
