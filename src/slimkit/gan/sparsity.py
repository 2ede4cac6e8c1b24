"""Sparse normalization scales: the proximal L1 step and the removal of the channels it zeroed.

GAN Slimming optimizes ``loss + rho * sum |gamma|`` over the scales ``gamma`` of the generator's BatchNorm and
affine InstanceNorm layers by proximal gradient: after each optimizer step every scale is soft-thresholded,
``gamma <- sign(gamma) * max(|gamma| - lr * rho, 0)``, which (unlike the subgradient of network slimming) leaves
exact zeros. Channels whose scale is zero are then removed by the structured engine (coupled convolutions,
residual partners, the layers that read them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from slimkit.core.modules import set_submodule
from slimkit.prune.engine import ChannelGraph, PruneConfig, build_graph, make_plan
from slimkit.quant.modules import is_quant_layer, to_float_layer, to_quant_layer

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


def norm_scales(model: nn.Module) -> list[nn.Parameter]:
    """The affine scale (gamma) of every BatchNorm and affine InstanceNorm layer of ``model``."""
    return [m.weight for m in model.modules() if isinstance(m, NORMS) and m.weight is not None]


@torch.no_grad()
def proximal_l1_(scales: list[torch.Tensor], threshold: float) -> None:
    """Soft-threshold ``scales`` in place: ``sign(g) * max(|g| - threshold, 0)`` (the prox of ``threshold * |g|``).

    Scales with ``|g| <= threshold`` become exactly 0; the others move ``threshold`` towards 0.
    """
    if threshold <= 0 or not scales:
        return
    for g in scales:
        g.copy_(torch.sign(g) * (g.abs() - threshold).clamp_min(0.0))


def zero_fraction(scales: list[torch.Tensor]) -> float:
    """Fraction of the scales that are exactly 0."""
    total = sum(s.numel() for s in scales)
    return sum(int((s == 0).sum()) for s in scales) / max(total, 1)


def channel_scales(graph: ChannelGraph) -> tuple[torch.Tensor, torch.Tensor]:
    """Per graph channel: the mean |gamma| of its coupled BatchNorm/InstanceNorm layers, and whether it has one."""
    from slimkit.prune.methods.slimming import channel_scales as scales_of

    return scales_of(graph, NORMS)


def removal_mask(graph: ChannelGraph, threshold: float) -> torch.Tensor:
    """Channels of normalized groups whose mean |gamma| is ``<= threshold``; every group keeps its largest one."""
    scale, has = channel_scales(graph)
    removed = torch.zeros(graph.num_channels, dtype=torch.bool)
    for g in graph.groups:
        s = scale[g.channels]
        if not bool(has[g.channels].all()):
            continue  # a group without a scale on every channel is not slimmed
        below = s <= threshold
        if bool(below.all()):
            below[torch.argmax(s)] = False
        removed[g.channels[below]] = True
    return removed


def choose_threshold(graph: ChannelGraph, target_macs_reduction: float | None = None,
                     target_params_reduction: float | None = None) -> tuple[float, torch.Tensor]:
    """The threshold 0 (exactly the zeroed channels), raised to the smallest |gamma| that meets the targets.

    Binary search over the sorted channel scales: removing more channels never adds MACs or parameters, so the
    smallest threshold meeting ``macs_before / target`` (and ``params_before / target``) is found with
    log2(channels) costings of a mask. When even the largest threshold misses, it is the closest there is.
    """
    macs_budget = graph.macs() / target_macs_reduction if target_macs_reduction else None
    params_budget = graph.params() / target_params_reduction if target_params_reduction else None

    def meets(mask: torch.Tensor) -> bool:
        return ((macs_budget is None or graph.macs(mask) <= macs_budget)
                and (params_budget is None or graph.params(mask) <= params_budget))

    removed = removal_mask(graph, 0.0)
    if meets(removed):
        return 0.0, removed
    scale, has = channel_scales(graph)
    candidates = torch.unique(scale[has])  # sorted
    lo, hi = 0, len(candidates) - 1
    best = (float(candidates[hi]), removal_mask(graph, float(candidates[hi])))
    while lo <= hi:
        mid = (lo + hi) // 2
        mask = removal_mask(graph, float(candidates[mid]))
        if meets(mask):
            best, hi = (float(candidates[mid]), mask), mid - 1
        else:
            lo = mid + 1
    return best


@dataclass
class Removal:
    threshold: float
    zero_channels: int
    channels_before: int
    channels_after: int
    macs_before: int
    macs_after: int


def _slice_quantizer(q: nn.Module | None, keep: torch.Tensor) -> None:
    """Keep positions ``keep`` of a per-channel quantizer's scale, zero point and learned step."""
    if q is None or getattr(q, "axis", None) is None:
        return
    for name in ("scale", "zero_point"):
        t = getattr(q, name)
        if t.dim() > 0 and t.shape[0] == keep.numel():
            setattr(q, name, t[keep.to(t.device)].clone())
    step = getattr(q, "step", None)
    if step is not None and step.dim() > 0 and step.shape[0] == keep.numel():
        q.step = nn.Parameter(step.detach()[keep.to(step.device)].clone())


def remove_channels(model: nn.Module, example_inputs: tuple, target_macs_reduction: float | None = None,
                    target_params_reduction: float | None = None) -> Removal:
    """Remove the zero-scale channels of ``model`` in place (more, smallest |gamma| first, to meet the targets).

    Quantized layers are unwrapped to their float layers for the engine and wrapped again with the same
    quantizers, per-channel scales and learned steps sliced like the weights; nothing is re-calibrated.
    """
    quantizers: dict[str, tuple[nn.Module, nn.Module | None]] = {}
    for fqn, m in list(model.named_modules()):
        if is_quant_layer(m):
            quantizers[fqn] = (m.weight_quant, m.input_quant)
            set_submodule(model, fqn, to_float_layer(m, bake_weight=False))
    try:
        graph = build_graph(model, example_inputs)
        scale, has = channel_scales(graph)
        threshold, removed = choose_threshold(graph, target_macs_reduction, target_params_reduction)
        plan = make_plan(graph, removed, example_inputs, PruneConfig(importance="bn_scale", normalize="none"))
        report = plan.apply()
        removed = plan.removed  # the engine leaves a group alone when cutting it would break the model
        for o in graph.occurrences:
            for fqn, _module, attr, is_param in graph.locations[o.tensor]:
                wq = quantizers.get(fqn, (None, None))[0]
                if is_param and attr == "weight" and wq is not None and o.dim == wq.axis:
                    _slice_quantizer(wq, ~removed[graph.comp[o.ids]])
    finally:
        for fqn, (wq, iq) in quantizers.items():
            set_submodule(model, fqn, to_quant_layer(model.get_submodule(fqn), wq, iq))
    channels = int(has.sum())
    return Removal(threshold, int(((scale == 0) & has).sum()), channels, channels - int((removed & has).sum()),
                   report.macs_before, report.macs_after)
