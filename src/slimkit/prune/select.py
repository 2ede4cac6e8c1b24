"""Which channels to remove: uniform per-group ratios, overrides, global ranking, MACs/params budgets, rounding.

Works on scores of every channel and returns a boolean mask over the graph's channels. Budgets are met by
bisection on the global ratio using the graph's exact cost model (conv/linear/matmul MACs and parameter counts
as functions of the kept channels), so no trial pruning is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from slimkit.core.modules import matches_any
from slimkit.graph.groups import ChannelGraph, Group
from slimkit.prune.config import PruneConfig, Scope


@dataclass
class _Eligible:
    group: Group
    order: torch.Tensor  # the group's channels, least important first
    override: float | None


def eligible_groups(graph: ChannelGraph, scores: torch.Tensor, config: PruneConfig) -> tuple[list[_Eligible], list[tuple[Group, str]]]:
    """Groups that may be pruned, each with its channels sorted by score; and the excluded ones with why."""
    out, excluded = [], []
    for g in graph.groups:
        if config.ignore and any(matches_any(m, config.ignore) for m in g.modules):
            excluded.append((g, "in the ignore list"))
            continue
        if not g.exact and not config.allow_inexact:
            excluded.append((g, "not function-preserving (allow_inexact=False)"))
            continue
        override = None
        for pattern, value in config.ratios.items():
            if matches_any(g.name.split(" ")[0], (pattern,)):
                override = value
        order = g.channels[torch.argsort(scores[g.channels], stable=True)]
        out.append(_Eligible(g, order, override))
    return out, excluded


def _step(config: PruneConfig, width: int) -> int:
    """Channels per rounding step of a group whose channels span ``width`` positions each."""
    return config.round_to // math.gcd(config.round_to, width) if config.round_to else 1


def _keep_count(n: int, wanted_keep: float, width: int, config: PruneConfig, cap_ratio: float) -> int:
    step = _step(config, width)
    floor = max(math.ceil(config.min_channels / width), 1, math.ceil(n * (1 - cap_ratio)))
    keep = max(float(floor), wanted_keep)
    if step > 1:
        keep = max(step, round(keep / step) * step)
        if keep < floor:
            keep += step
    return int(min(n, keep))


def ranking_keys(graph: ChannelGraph, scores: torch.Tensor, ranked: list[_Eligible], config: PruneConfig,
                 cost: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Global ranking key of every channel (normalized score, over ``cost ** latency_weight`` when given; higher
    is more important; 0 for channels outside ``ranked``) and the owning group of every ranked channel, least
    important first."""
    from slimkit.prune.importance import normalize_scores

    chans = torch.cat([e.group.channels for e in ranked])
    owner = torch.repeat_interleave(torch.arange(len(ranked)), torch.tensor([e.group.size for e in ranked]))
    member = torch.full((graph.num_channels,), -1, dtype=torch.long)
    member[chans] = owner
    norm = normalize_scores(scores, member, len(ranked), config.normalize.value)[chans]
    if cost is not None:
        c = cost[chans].double()
        norm = (norm.double() / (c / c.mean().clamp_min(1e-12)).clamp_min(1e-3) ** config.latency_weight).float()
    keys = torch.zeros(graph.num_channels)
    keys[chans] = norm
    return keys, owner[torch.argsort(norm, stable=True)]


def global_order(graph: ChannelGraph, scores: torch.Tensor, ranked: list[_Eligible], config: PruneConfig,
                 cost: torch.Tensor | None) -> torch.Tensor:
    """Owning group (index into ``ranked``) of every ranked channel, least important first."""
    return ranking_keys(graph, scores, ranked, config, cost)[1]


def select_channels(graph: ChannelGraph, scores: torch.Tensor, groups: list[_Eligible], config: PruneConfig,
                    ratio: float, cost: torch.Tensor | None = None, order: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean mask of the channels to remove at overall ``ratio``.

    ``order``: :func:`global_order` computed once by callers that select at many ratios (budget bisection).

    ``cost`` (per channel, e.g. measured latency saved) turns the global ranking into importance per
    ``cost ** config.latency_weight``.
    """
    removed = torch.zeros(graph.num_channels, dtype=torch.bool)
    ranked = [e for e in groups if e.override is None]
    fixed = [e for e in groups if e.override is not None]
    counts: dict[int, float] = {}
    if config.scope == Scope.LOCAL:
        for e in ranked:
            counts[id(e)] = e.group.size * (1 - ratio)
    elif ranked:
        owner_sorted = order if order is not None else global_order(graph, scores, ranked, config, cost)
        k = int(ratio * owner_sorted.numel())
        per_group = torch.bincount(owner_sorted[:k], minlength=len(ranked)).tolist()
        for i, e in enumerate(ranked):
            counts[id(e)] = e.group.size - per_group[i]
    for e in fixed:
        counts[id(e)] = e.group.size * (1 - e.override)
    cap = config.max_group_ratio if config.scope == Scope.GLOBAL else 1.0
    for e in groups:
        n = e.group.size
        keep = _keep_count(n, counts[id(e)], e.group.width, config, cap if e.override is None else 1.0)
        if keep < n:
            removed[e.order[: n - keep]] = True
    return removed


def select_for_budget(graph: ChannelGraph, scores: torch.Tensor, groups: list[_Eligible], config: PruneConfig,
                      cost: torch.Tensor | None = None) -> torch.Tensor:
    """Smallest global ratio whose MACs (or params) meet the budget, found by bisection on the cost model."""
    weights = cost
    ranked = [e for e in groups if e.override is None]
    keys = order = None
    if ranked and config.scope == Scope.GLOBAL:
        keys, order = ranking_keys(graph, scores, ranked, config, cost)
    if config.target_params is not None:
        cost, target = graph.params, float(config.target_params)
    else:
        cost = graph.macs
        base = graph.macs()
        target = float(config.target_macs) if config.target_macs is not None else base / float(config.macs_reduction)
    lo, hi = 0.0, 0.999
    best = select_channels(graph, scores, groups, config, hi, weights, order)
    if cost(best) > target:
        return best  # the budget cannot be met within the per-group limits: prune as far as allowed
    for _ in range(13):
        mid = (lo + hi) / 2
        removed = select_channels(graph, scores, groups, config, mid, weights, order)
        if cost(removed) <= target:
            hi, best = mid, removed
        else:
            lo = mid
    if keys is not None:
        best = _give_back(best, ranked, keys, config, cost, target)
    return best


def _give_back(removed: torch.Tensor, ranked: list[_Eligible], keys: torch.Tensor, config: PruneConfig,
               cost: Callable[[torch.Tensor], float], target: float, passes: int = 4) -> torch.Tensor:
    """Restore removed channels, one rounding step of one group at a time, while the budget still holds.

    The bisection stops at the first global ratio under the budget; with ``round_to`` every group moves in whole
    steps, so that plan can cut several percent more than asked. Each pass offers every group its most
    important removed step (most important first) and keeps those that fit.
    """
    removed = removed.clone()
    for _ in range(passes):
        offers = []
        for e in ranked:
            gone, step = int(removed[e.group.channels].sum()), _step(config, e.group.width)
            if gone >= step:  # removal takes a prefix of the group's order, least important first
                block = e.order[gone - step: gone]
                offers.append((float(keys[block].max()), block))
        kept_any = False
        for _, block in sorted(offers, key=lambda o: -o[0]):
            removed[block] = False
            if cost(removed) <= target:
                kept_any = True
            else:
                removed[block] = True
        if not kept_any:
            break
    return removed
