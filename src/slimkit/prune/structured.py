"""Structured channel pruning, the public verbs: ``plan_pruning`` (dry run) and ``prune_channels``.

Example:
    >>> plan = slimkit.plan_pruning(model, (x,), ratio=0.5, importance="l1")
    >>> print(plan.table())              # per group: channels and MACs before/after; nothing changed yet
    >>> report = plan.apply()            # slices the model in place, atomically
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from slimkit.core.errors import ConfigError, GraphError
from slimkit.core.gc_pause import gc_paused
from slimkit.graph.groups import ChannelGraph, build_graph
from slimkit.prune.apply import apply_removal
from slimkit.prune.config import PruneConfig, resolve_config
from slimkit.prune.importance import ImportanceContext, channel_scores, criterion_needs
from slimkit.prune.select import eligible_groups, select_channels, select_for_budget


@dataclass(frozen=True)
class GroupReport:
    """One coupling group: its producing module(s), channels and the coupled modules."""

    name: str
    channels_before: int
    channels_after: int
    exact: bool
    modules: tuple[str, ...]


@dataclass(frozen=True)
class SkippedGroup:
    name: str
    channels: int
    reason: str


@dataclass
class PruneReport:
    """What pruning did. MACs are of the example input (conv, linear, matmul and attention ops)."""

    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    groups: list[GroupReport]
    skipped: list[SkippedGroup]
    analysis_s: float
    apply_s: float = 0.0
    applied: bool = False
    latency_trail: list[tuple[float, float]] = field(default_factory=list)  # (ratio, measured ms) for target_latency_ms

    @property
    def macs_reduction(self) -> float:
        return self.macs_before / max(self.macs_after, 1)

    @property
    def params_reduction(self) -> float:
        return self.params_before / max(self.params_after, 1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["macs_reduction"] = self.macs_reduction
        d["params_reduction"] = self.params_reduction
        return d

    def table(self, limit: int = 40) -> str:
        rows = [f"{'group':<40} {'channels':>15}  exact"]
        for g in self.groups[:limit]:
            rows.append(f"{g.name[:40]:<40} {g.channels_before:>6} -> {g.channels_after:<6}  {'yes' if g.exact else 'no'}")
        if len(self.groups) > limit:
            rows.append(f"... {len(self.groups) - limit} more groups")
        for s in self.skipped[:limit]:
            rows.append(f"{s.name[:40]:<40} {s.channels:>6} untouched: {s.reason}")
        rows.append(f"MACs {self.macs_before:,} -> {self.macs_after:,} ({self.macs_reduction:.2f}x); "
                    f"params {self.params_before:,} -> {self.params_after:,} ({self.params_reduction:.2f}x); "
                    f"analysis {self.analysis_s:.3f}s, apply {self.apply_s:.3f}s")
        return "\n".join(rows)


@dataclass
class PrunePlan:
    """A dry run: which channels go, and what it costs and saves. Nothing is changed until :meth:`apply`."""

    graph: ChannelGraph
    removed: torch.Tensor
    example_inputs: tuple
    config: PruneConfig
    report: PruneReport
    excluded: list[tuple[str, str]] = field(default_factory=list)

    def table(self, limit: int = 40) -> str:
        return self.report.table(limit)

    def indices(self, group: int | str) -> torch.Tensor:
        """Positions this plan removes from ``group`` (index or name), along its producing tensor's dim."""
        groups = self.graph.groups
        g = groups[group] if isinstance(group, int) else next((x for x in groups if x.name == group), None)
        if g is None:
            raise ConfigError(f"no prunable group named {group!r}; groups: {', '.join(x.name for x in groups)}")
        occs = [self.graph.occurrences[i] for i in g.occurrences]
        primary = next((o for o in occs if o.role == "out"), occs[0])
        return self.removed[self.graph.comp[primary.ids]].nonzero().squeeze(1)

    def group_costs(self) -> list[dict[str, Any]]:
        """Per group: channels before/after, and the model's MACs/params if only this group were pruned."""
        base_macs, base_params = self.report.macs_before, self.report.params_before
        rows = []
        for g, rep in zip(self.graph.groups, self.report.groups):
            alone = torch.zeros_like(self.removed)
            alone[g.channels] = self.removed[g.channels]
            rows.append({"group": g.name, "channels_before": rep.channels_before, "channels_after": rep.channels_after,
                         "macs_before": base_macs, "macs_after": self.graph.macs(alone),
                         "params_before": base_params, "params_after": self.graph.params(alone)})
        return rows

    def apply(self, *, optimizer: torch.optim.Optimizer | None = None) -> PruneReport:
        """Slice the model in place and return the report with ``applied=True``.

        The pruned model is run on the example inputs (unless ``verify="never"``): it must run, keep its output
        shapes and keep finite outputs finite. If it does not, the groups whose cut breaks it are found by
        bisection, left untouched (``report.skipped`` names the failing module and error), and the rest is
        applied. A model handed back always runs; on any other error it is restored exactly.
        """
        t0 = time.perf_counter()
        try:
            apply_removal(self.graph, self.removed, self.example_inputs, optimizer, verify=self.config.verify)
        except GraphError:
            if self.config.verify == "never":
                raise
            self._exclude_breaking_groups()
            apply_removal(self.graph, self.removed, self.example_inputs, optimizer, verify=self.config.verify)
        self.report.apply_s = time.perf_counter() - t0
        self.report.applied = True
        return self.report

    def _exclude_breaking_groups(self) -> None:
        """Drop the groups whose cut breaks the forward from the plan, and rebuild the report around the rest."""
        from slimkit.prune.apply import breaking_groups

        bad = breaking_groups(self.graph, self.removed, self.example_inputs)
        if not bad:
            raise GraphError(f"{type(self.graph.model).__name__}: the pruned model fails, and no single group "
                             "explains it; the model is unchanged")
        removed = self.removed.clone()
        for i, _ in bad:
            removed[self.graph.groups[i].channels] = False
        reasons = [(self.graph.groups[i].name, f"cutting it breaks the model: {why}") for i, why in bad]
        rebuilt = make_plan(self.graph, removed, self.example_inputs, self.config, self.excluded + reasons)
        rebuilt.report.latency_trail = self.report.latency_trail
        self.removed, self.report, self.excluded = removed, rebuilt.report, rebuilt.excluded


def _as_tuple(example_inputs: Any) -> tuple:
    return example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)


def make_plan(graph: ChannelGraph, removed: torch.Tensor, example_inputs: Any, config: PruneConfig,
              excluded: Iterable[tuple[str, str]] = ()) -> PrunePlan:
    """A plan removing exactly the channels in ``removed`` (a boolean mask over ``graph``'s channels)."""
    groups = []
    for g in graph.groups:
        gone = int(removed[g.channels].sum())
        groups.append(GroupReport(g.name, g.size * g.width, (g.size - gone) * g.width, g.exact, tuple(g.modules)))
    skipped = [SkippedGroup(g.name, g.size * g.width, g.reason) for g in graph.skipped]
    sizes = {g.name: g.size * g.width for g in graph.groups}
    skipped += [SkippedGroup(name, sizes.get(name, 0), why) for name, why in excluded]
    report = PruneReport(graph.macs(), graph.macs(removed), graph.params(), graph.params(removed), groups, skipped,
                         graph.analysis_s)
    return PrunePlan(graph, removed, _as_tuple(example_inputs), config, report, list(excluded))


def plan_pruning(model: nn.Module, example_inputs: Any, config: PruneConfig | dict | None = None, *,
                 importance_data: Iterable[Any] | None = None, loss_fn: Callable[..., torch.Tensor] | None = None,
                 **options: Any) -> PrunePlan:
    """Trace ``model``, score its channels and choose which to remove, without changing anything.

    Args:
        model: any ``nn.Module``; it is run once on ``example_inputs`` (eval mode, no grad).
        example_inputs: a tensor or a tuple of positional inputs.
        config: a :class:`PruneConfig` (or a dict of its fields); keyword ``options`` override its fields.
        importance_data: a few ``(inputs, targets)`` batches, for ``taylor``.
        loss_fn: loss for ``taylor`` (default cross entropy).

    Raises:
        ConfigError: a bad option. GraphError: the forward fails, or ``strict`` and some channel is blocked.
    """
    config = resolve_config(model, config, options)
    with gc_paused():
        graph = build_graph(model, _as_tuple(example_inputs), record_activity="activations" in criterion_needs(config.importance),
                            attention=config.attention)
        if config.strict:
            for g in graph.skipped:
                if "model output" not in g.reason:
                    raise GraphError(f"cannot prune group {g.name}: {g.reason}")
        ctx = ImportanceContext(config.aggregate.value, config.debias, config.seed, _as_tuple(example_inputs),
                                importance_data, loss_fn)
        scores = channel_scores(graph, config.importance, ctx) if graph.num_channels else torch.zeros(0)
        groups, excluded = eligible_groups(graph, scores, config)
        trail: list[tuple[float, float]] = []
        cost = None
        budget = config.effective_budget
        if config.latency_weight > 0 and config.scope == "global":
            from slimkit.prune.latency import latency_per_channel

            cost = latency_per_channel(graph, _as_tuple(example_inputs), config)
            if budget.kind in ("macs", "params"):
                from slimkit.prune.latency import latency_per_budget_unit

                cost = latency_per_budget_unit(graph, cost, budget.kind)
        if budget.kind == "latency_ms":
            from slimkit.prune.latency import select_for_latency

            removed, trail = select_for_latency(graph, scores, groups, config, _as_tuple(example_inputs), cost=cost)
        elif budget.kind != "ratio":
            removed = select_for_budget(graph, scores, groups, config, cost)
        else:
            removed = select_channels(graph, scores, groups, config, config.ratio, cost)
        plan = make_plan(graph, removed, example_inputs, config, [(g.name, why) for g, why in excluded])
        plan.report.latency_trail = trail
    return plan


def prune_channels(model: nn.Module, example_inputs: Any, config: PruneConfig | dict | None = None, *,
                   optimizer: torch.optim.Optimizer | None = None, importance_data: Iterable[Any] | None = None,
                   loss_fn: Callable[..., torch.Tensor] | None = None, **options: Any) -> PruneReport:
    """Remove channels, neurons and heads from ``model`` in place; all or nothing.

    Args:
        model: the model (changed in place).
        example_inputs: a tensor or tuple of inputs to trace with (one sample is enough). MACs, ``target_macs``
            included, are counted on these inputs: a batch of 8 counts 8 samples' MACs.
        config: a :class:`PruneConfig` or dict; or give its fields as keywords: ``ratio=0.5``, ``importance="l1"``,
            ``scope="global"``, ``ignore=("head",)``, ``target_macs=...``, ``macs_reduction=2.0``, ``round_to=8``...
        optimizer: if given, its parameters and state (momentum, Adam moments) are sliced along.

    Returns:
        PruneReport: MACs/params before and after, per group channels before/after, untouched groups with reasons.

    Example:
        >>> report = slimkit.prune_channels(model, torch.randn(1, 3, 32, 32), ratio=0.5, round_to=8)
        >>> report.macs_reduction
    """
    plan = plan_pruning(model, example_inputs, config, importance_data=importance_data, loss_fn=loss_fn, **options)
    with gc_paused():
        return plan.apply(optimizer=optimizer)
