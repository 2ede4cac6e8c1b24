"""Which channels to remove: uniform per-group ratios, overrides, global ranking, MACs/params budgets, rounding.

Works on scores of every channel and returns a boolean mask over the graph's channels. Budgets are met by
bisection on the global ratio using the graph's exact cost model (conv/linear/matmul MACs and parameter counts
as functions of the kept channels), so no trial pruning is needed. A budget that cannot be met (nothing prunable,
the per-group floors, rounding steps too coarse to land within :data:`BUDGET_TOLERANCE`) raises ConfigError, or
with ``allow_partial`` warns (:class:`BudgetWarning`) and keeps the closest plan.
"""

from __future__ import annotations

import heapq
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from slimkit.core.errors import ConfigError
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
        reason = exclusion_reason(g, config)
        if reason:
            excluded.append((g, reason))
            continue
        override = None
        for pattern, value in config.ratios.items():
            if matches_any(g.name.split(" ")[0], (pattern,)):
                override = value
        order = g.channels[torch.argsort(scores[g.channels], stable=True)]
        out.append(_Eligible(g, order, override))
    return out, excluded


def exclusion_reason(group: Group, config: PruneConfig) -> str:
    """Why ``config`` keeps a prunable group whole ("" when it may be pruned)."""
    if config.ignore and any(matches_any(m, config.ignore) for m in group.modules):
        return "in the ignore list"
    if not group.exact and not config.allow_inexact:
        return "not function-preserving (allow_inexact=False)"
    return ""


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


#: A budget is met when the cut reaches it (MACs or params at most the target) and overshoots the asked reduction
#: by at most this fraction (2.06x for 2x asked). Rounding steps too coarse to land that close are reported.
BUDGET_TOLERANCE = 0.03


class BudgetWarning(UserWarning):
    """A MACs/params budget cannot be met; with ``allow_partial=True`` the closest reachable plan is kept."""


@dataclass(frozen=True)
class _Budget:
    measure: Callable[[torch.Tensor | None], float]  # MACs or params after removing a mask of channels
    base: float
    target: float
    unit: str  # "MACs" or "params"
    asked: str  # the option as the user gave it: "macs_reduction=2"

    def reduction(self, removed: torch.Tensor | None) -> float:
        return self.base / max(self.measure(removed), 1)

    def overshoots(self, removed: torch.Tensor) -> bool:
        """Past the budget by more than the tolerance (a target above the model asks for nothing removed)."""
        return self.measure(removed) < min(self.target, self.base) / (1 + BUDGET_TOLERANCE)


def _budget(graph: ChannelGraph, config: PruneConfig) -> _Budget:
    budget = config.effective_budget
    measure, unit = (graph.params, "params") if budget.kind == "params" else (graph.macs, "MACs")
    base = float(measure())
    if budget.factor:
        return _Budget(measure, base, base / budget.value, unit, budget.option)
    name = budget.option.partition("=")[0]
    return _Budget(measure, base, budget.value, unit, f"{name}={budget.value:,.0f} ({base / budget.value:.2f}x)")


def select_for_budget(graph: ChannelGraph, scores: torch.Tensor, groups: list[_Eligible], config: PruneConfig,
                      cost: torch.Tensor | None = None, *, quiet: bool = False) -> torch.Tensor:
    """Channels to remove so that MACs (or params) meet the budget, landing within :data:`BUDGET_TOLERANCE`.

    The smallest global ratio under the budget is found by bisection on the exact cost model. Whole rounding
    steps are then given back, most important first, while the budget holds. If the cut still overshoots by more
    than the tolerance (coarse steps: ``round_to`` on a small model, a group each of whose channels carries much
    of the model), the selection walks on from the last plan above the budget, least important step first,
    passing over steps that would overshoot.

    Raises:
        ConfigError: the budget cannot be met: nothing is prunable, the per-group floors stop short of it, or the
            steps cannot land within the tolerance. The message names the limit and the closest reduction. With
            ``config.allow_partial`` a :class:`BudgetWarning` with the same message is emitted instead and the
            closest plan returned (the largest cut allowed, or the closest cut under the budget). ``quiet``: return
            that plan without either, for callers whose budget is an internal step (a progressive round).
    """
    budget = _budget(graph, config)
    ranked = [e for e in groups if e.override is None]
    keys = order = None
    if ranked:
        keys, owner = ranking_keys(graph, scores, ranked, config, cost)
        order = owner if config.scope == Scope.GLOBAL else None
    most = select_channels(graph, scores, groups, config, 1.0, cost, order)
    if budget.measure(most) > budget.target:
        if not quiet:
            _unmet(_floor_message(graph, groups, config, budget, most), config)
        return most  # the budget cannot be met within the per-group limits: prune as far as allowed
    lo, hi = 0.0, 1.0
    best, above = most, None
    for _ in range(13):
        mid = (lo + hi) / 2
        removed = select_channels(graph, scores, groups, config, mid, cost, order)
        if budget.measure(removed) <= budget.target:
            hi, best = mid, removed
        else:
            lo, above = mid, removed
    if keys is not None:
        best = _give_back(best, ranked, keys, config, budget.measure, budget.target)
        if budget.overshoots(best):
            start = above if above is not None else select_channels(graph, scores, groups, config, 0.0, cost, order)
            walked = _walk(start, ranked, keys, config, budget)
            if walked is not None and budget.measure(walked) > budget.measure(best):
                best = walked
    if budget.overshoots(best) and not quiet:
        _unmet(_coarse_message(graph, ranked, config, budget, best), config)
    return best


def _give_back(removed: torch.Tensor, ranked: list[_Eligible], keys: torch.Tensor, config: PruneConfig,
               cost: Callable[[torch.Tensor], float], target: float, passes: int = 32) -> torch.Tensor:
    """Restore removed channels, one rounding step of one group at a time, while the budget still holds.

    The bisection stops at the first global ratio under the budget; with ``round_to`` every group moves in whole
    steps, so that plan can cut several percent more than asked. Each pass offers every group its most
    important removed step (most important first) and keeps those that fit, until a pass keeps none.
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


def _walk(removed: torch.Tensor, ranked: list[_Eligible], keys: torch.Tensor, config: PruneConfig,
          budget: _Budget, max_evals: int = 4096) -> torch.Tensor | None:
    """From a plan above the budget, remove rounding steps least important first until the budget holds.

    A step that would cross the budget by more than the tolerance is passed over, and with it the rest of its
    group (removal stays a prefix of each group's order). Returns the first plan within the tolerance, else the
    closest plan under the budget seen, else None.
    """
    removed = removed.clone()
    cap = config.max_group_ratio if config.scope == Scope.GLOBAL else 1.0
    heap: list[tuple[float, int, torch.Tensor]] = []

    def push(i: int) -> None:
        e = ranked[i]
        n, step = e.group.size, _step(config, e.group.width)
        keep = n - int(removed[e.group.channels].sum())
        nxt = (keep // step) * step if keep % step else keep - step
        if nxt >= _keep_count(n, 0.0, e.group.width, config, cap):
            block = e.order[n - keep: n - nxt]
            heapq.heappush(heap, (float(keys[block].max()), i, block))

    for i in range(len(ranked)):
        push(i)
    best, best_cost = None, -1.0
    for _ in range(max_evals):
        if not heap:
            break
        _, i, block = heapq.heappop(heap)
        removed[block] = True
        c = budget.measure(removed)
        if c > budget.target:
            push(i)
            continue
        if c > best_cost:
            best, best_cost = removed.clone(), c
        if not budget.overshoots(removed):
            break
        removed[block] = False  # too far past the budget: leave this group here
    return best


def _unmet(message: str, config: PruneConfig) -> None:
    if not config.allow_partial:
        raise ConfigError(message + "; pass allow_partial=True to accept the closest plan")
    warnings.warn(BudgetWarning(message + "; keeping the closest plan (allow_partial=True)"), stacklevel=4)


def _untouched(graph: ChannelGraph, groups: list[_Eligible], config: PruneConfig) -> list[str]:
    """``name: reason`` of every group left whole before selection (skipped by the graph, or excluded)."""
    chosen = {id(e.group) for e in groups}
    rows = [f"{g.name}: {g.reason}" for g in graph.skipped]
    rows += [f"{g.name}: {exclusion_reason(g, config)}" for g in graph.groups if id(g) not in chosen]
    return rows


def _summary(rows: list[str], limit: int = 4) -> str:
    more = f"; +{len(rows) - limit} more" if len(rows) > limit else ""
    return "; ".join(rows[:limit]) + more


def _floor_message(graph: ChannelGraph, groups: list[_Eligible], config: PruneConfig, budget: _Budget,
                   most: torch.Tensor) -> str:
    name = type(graph.model).__name__
    untouched = _untouched(graph, groups, config)
    if budget.measure(most) >= budget.base:
        stuck = [e.group.name for e in groups if not most[e.group.channels].any()]
        parts = []
        if untouched:
            parts.append(f"{len(untouched)} group(s) untouched ({_summary(untouched)})")
        if stuck:
            why = f"round_to={config.round_to}" if config.round_to else f"min_channels={config.min_channels}"
            parts.append(f"{len(stuck)} group(s) too small to lose a channel with {why} ({_summary(stuck)})")
        if not parts:
            parts.append("no channels found")
        return f"{budget.asked} cannot be met: nothing in {name} is prunable: " + "; ".join(parts)
    limits = [f"the floor of {config.min_channels} channel{'s' if config.min_channels > 1 else ''} per group"]
    if config.scope == Scope.GLOBAL and config.max_group_ratio < 1:
        limits.append(f"max_group_ratio={config.max_group_ratio:g}")
    if config.round_to:
        limits.append(f"round_to={config.round_to}")
    if any(e.override is not None for e in groups):
        limits.append("the fixed ratios")
    limit = limits[0] + (f" (and {', '.join(limits[1:])})" if len(limits) > 1 else "")
    tail = f"; untouched: {_summary(untouched)}" if untouched else ""
    return (f"{budget.asked} cannot be met in {name}: {limit} allows at most "
            f"{budget.reduction(most):.2f}x fewer {budget.unit}{tail}")


def _coarse_message(graph: ChannelGraph, ranked: list[_Eligible], config: PruneConfig, budget: _Budget,
                    best: torch.Tensor) -> str:
    share, coarsest = 0.0, ""
    for e in ranked:  # what one step of each group alone moves
        one = torch.zeros_like(best)
        one[e.order[: _step(config, e.group.width)]] = True
        s = 1 - budget.measure(one) / budget.base
        if s > share:
            share, coarsest = s, e.group.name
    limit = f"round_to={config.round_to}" if config.round_to else "the channel steps"
    return (f"{budget.asked}: {limit} cannot land within {BUDGET_TOLERANCE:.0%} in {type(graph.model).__name__} "
            f"(closest {budget.reduction(best):.2f}x fewer {budget.unit}; one step of {coarsest!r} moves "
            f"{share:.1%} of them)")
