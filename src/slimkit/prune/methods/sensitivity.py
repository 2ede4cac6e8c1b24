"""Sensitivity analysis: prune each group alone at a sweep of ratios, evaluate, and derive per-layer ratios.

Each trial prunes a copy of the model (the original is never touched) with the engine, removing the lowest-scored
channels of one group only, and measures accuracy on validation data. The curves tell which layers are fragile;
:meth:`SensitivityReport.ratios_for_drop` and :meth:`SensitivityReport.ratios_for_macs` turn them into per-layer
ratios that ``prune_channels(..., ratios=...)`` applies as overrides.

Example:
    >>> sens = sensitivity_analysis(model, (x,), splits.val, ratios=(0.25, 0.5, 0.75), plot_path="sens.png")
    >>> overrides = sens.ratios_for_macs(macs_reduction=2.0)
    >>> slimkit.prune_channels(model, (x,), ratio=0.0, scope="local", ratios=overrides)
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from slimkit.core.config import check_ratio
from slimkit.core.errors import ConfigError
from slimkit.prune.engine import (
    ChannelGraph,
    ImportanceContext,
    PruneConfig,
    build_graph,
    channel_scores,
    make_plan,
)
from slimkit.prune.importance import Importance, checked_importance, importance_field, resolve_importance
from slimkit.prune.methods._common import accuracy, as_tuple, find_group, lowest
from slimkit.prune.structured import PruneReport, prune_channels


@dataclass(frozen=True)
class SensitivityConfig:
    """Options of a sensitivity run: the recipe's ``sensitivity`` stage and ``slimkit sensitivity``.

    Attributes:
        ratios: the sweep per layer.
        importance: which channels go first in each trial: a weight criterion (its name, or its object/mapping).
        max_drop: prune every layer at the largest ratio keeping val accuracy within this of the baseline.
        macs_reduction: or prune with the per-layer ratios meeting this MACs factor at the smallest drop.
            Neither: analysis only (the model is unchanged).
        recalibrate_batches: re-estimate BatchNorm statistics of every trial on this many training batches
            before evaluating it (0 = off).
    """

    ratios: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    importance: Any = importance_field()
    max_drop: float | None = None
    macs_reduction: float | None = None
    recalibrate_batches: int = 0

    def __post_init__(self) -> None:
        if self.recalibrate_batches < 0:
            raise ValueError(f"recalibrate_batches must be >= 0, got {self.recalibrate_batches}")
        object.__setattr__(self, "ratios", tuple(float(r) for r in self.ratios))
        for r in self.ratios:
            check_ratio("ratios", r)
        object.__setattr__(self, "importance", checked_importance(self.importance, data_free=True))
        if self.max_drop is not None and self.macs_reduction is not None:
            raise ValueError("give at most one of max_drop, macs_reduction")
        if self.macs_reduction is not None and self.macs_reduction < 1:
            raise ValueError(f"macs_reduction must be >= 1, got {self.macs_reduction}")


@dataclass
class SensitivityReport:
    """Accuracy of the model with one group pruned at each ratio.

    Attributes:
        baseline_accuracy: accuracy of the unpruned model.
        ratios: the sweep.
        curves: group name -> accuracy at each ratio (same order as ``ratios``).
        sizes: group name -> channels.
        macs: MACs of the unpruned model; ``group_macs``: group -> MACs with that group pruned at each ratio.
    """

    baseline_accuracy: float
    ratios: list[float]
    curves: dict[str, list[float]]
    sizes: dict[str, int]
    macs: int
    group_macs: dict[str, list[int]]
    importance: str = "l1"
    plots: list[str] = field(default_factory=list)
    _graph: ChannelGraph | None = field(default=None, repr=False)
    _scores: torch.Tensor | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("_graph")
        d.pop("_scores")
        return d

    def table(self) -> str:
        head = f"{'group':<32}" + "".join(f"{r:>8.2f}" for r in self.ratios)
        rows = [head, f"{'(baseline ' + format(self.baseline_accuracy, '.4f') + ')':<32}"]
        for name, accs in self.curves.items():
            rows.append(f"{name[:32]:<32}" + "".join(f"{a:>8.4f}" for a in accs))
        return "\n".join(rows)

    def ratios_for_drop(self, max_drop: float) -> dict[str, float]:
        """Per group, the largest swept ratio whose accuracy stays within ``max_drop`` of the baseline.

        Pruning each layer alone is an optimistic estimate: drops add up when all layers are pruned together.
        """
        out: dict[str, float] = {}
        floor = self.baseline_accuracy - max_drop
        for name, accs in self.curves.items():
            best = 0.0
            for r, a in zip(self.ratios, accs):
                if a >= floor:
                    best = max(best, r)
                else:
                    break  # the curve is read as monotone: stop at its first miss
            out[name.split(" ")[0]] = best
        return out

    def ratios_for_macs(self, *, target_macs: float | None = None, macs_reduction: float | None = None) -> dict[str, float]:
        """Per-group ratios meeting a MACs budget with the smallest tolerated accuracy drop.

        Scans the drops seen in the curves in increasing order and returns the ratios of the first that meets the
        budget (MACs from the engine's exact cost model). Raises ConfigError when even the largest sweep misses.
        """
        if (target_macs is None) == (macs_reduction is None):
            raise ConfigError("ratios_for_macs: give exactly one of target_macs, macs_reduction")
        target = float(target_macs) if target_macs is not None else self.macs / float(macs_reduction)
        drops = sorted({max(self.baseline_accuracy - a, 0.0) for accs in self.curves.values() for a in accs} | {0.0})
        for drop in drops:
            ratios = self.ratios_for_drop(drop + 1e-12)
            if self.macs_of(ratios) <= target:
                return ratios
        raise ConfigError(f"ratios_for_macs: {target:,.0f} MACs not reachable with ratios up to {max(self.ratios)} "
                          f"per layer (best {self.macs_of(self.ratios_for_drop(1.0)):,} MACs)")

    def macs_of(self, ratios: dict[str, float]) -> int:
        """MACs of the model with every group pruned at its ratio in ``ratios`` (exact cost model)."""
        if self._graph is None or self._scores is None:
            raise ConfigError("this report has no graph (it was loaded from a file); rerun sensitivity_analysis")
        graph, removed = self._graph, torch.zeros(self._graph.num_channels, dtype=torch.bool)
        for name, ratio in ratios.items():
            g = find_group(graph, name)
            removed |= lowest(graph, g, self._scores, min(int(ratio * g.size), g.size - 1))
        return graph.macs(removed)


def sensitivity_analysis(model: nn.Module, example_inputs: Any, val_data: Any, *,
                         ratios: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                         importance: str | Mapping[str, Any] | Importance = "l1",
                         groups: Sequence[str] | None = None,
                         plot_path: str | os.PathLike | None = None, progress: bool = True,
                         recalibration_data: Any = None, recalibrate_batches: int = 20) -> SensitivityReport:
    """Accuracy of ``model`` with each prunable group pruned alone at each of ``ratios`` (model left unchanged).

    Args:
        model: the trained model (not modified).
        example_inputs: a tensor or tuple to trace with.
        val_data: dataset, loader or list of ``(x, y)`` batches to evaluate on.
        ratios: fractions of a group's channels removed (0 gives the baseline accuracy exactly).
        importance: which channels go first: a criterion that reads only the weights (its name, mapping or
            object; :class:`SensitivityConfig` checks that).
        groups: restrict to these group names (default: every prunable group).
        plot_path: write accuracy-vs-ratio curves, one per group, here (PNG).
        progress: show a progress bar.
        recalibration_data: training data (dataset or batches); when given, every trial re-estimates its
            BatchNorm statistics on ``recalibrate_batches`` batches before it is evaluated. Without it a cut is
            judged on statistics of the unpruned network, which can make a harmless cut look fatal.

    Returns:
        SensitivityReport, with ``ratios_for_drop`` / ``ratios_for_macs`` to derive per-layer overrides.
    """
    for r in ratios:
        check_ratio("ratios", r)
    inputs = as_tuple(example_inputs)
    graph = build_graph(model, inputs)
    criterion = resolve_importance(importance)
    scores = channel_scores(graph, criterion, ImportanceContext(example_inputs=inputs))
    names = [g.name for g in graph.groups] if groups is None else [find_group(graph, n).name for n in groups]
    baseline = accuracy(model, val_data)
    curves: dict[str, list[float]] = {}
    group_macs: dict[str, list[int]] = {}
    bar = tqdm(total=len(names) * len(ratios), desc="sensitivity", disable=not progress, leave=False)
    for name in names:
        curves[name], group_macs[name] = [], []
        for ratio in ratios:
            g = find_group(graph, name)
            count = min(int(ratio * g.size), g.size - 1)
            removed = lowest(graph, g, scores, count)
            group_macs[name].append(graph.macs(removed))
            if count == 0:
                curves[name].append(baseline)
            else:
                curves[name].append(_trial(model, inputs, name, scores, graph, removed, val_data,
                                           recalibration_data, recalibrate_batches))
            bar.update(1)
    bar.close()
    report = SensitivityReport(baseline, [float(r) for r in ratios], curves, {n: find_group(graph, n).size for n in names},
                               graph.macs(), group_macs, criterion.name, _graph=graph, _scores=scores)
    if plot_path is not None:
        from slimkit.report.plots import plot_curves

        plot = {n.split(" ")[0]: ([0.0, *report.ratios], [baseline, *accs]) for n, accs in curves.items()}
        report.plots.append(str(plot_curves(plot, plot_path, xlabel="ratio of the layer's channels removed",
                                            ylabel="accuracy", title="sensitivity per layer", hline=baseline)))
    return report


@dataclass
class SensitivityRun:
    """What :func:`run_sensitivity` did: the analysis, and the ratios it pruned with (None: analysis only)."""

    report: SensitivityReport
    ratios: dict[str, float] | None = None
    pruned: PruneReport | None = None


def run_sensitivity(model: nn.Module, example_inputs: Any, val_data: Any, config: SensitivityConfig, *,
                    train_data: Any = None, plot_path: str | os.PathLike | None = None) -> SensitivityRun:
    """A :class:`SensitivityConfig` run (the recipe stage's and ``slimkit sensitivity``'s): the analysis, then, with
    ``max_drop`` or ``macs_reduction``, ``model`` pruned in place with the per-layer ratios derived from it.

    Args:
        train_data: training data for ``recalibrate_batches`` (BatchNorm re-estimated in every trial).
    """
    report = sensitivity_analysis(model, example_inputs, val_data, ratios=config.ratios, importance=config.importance,
                                  plot_path=plot_path,
                                  recalibration_data=train_data if config.recalibrate_batches else None,
                                  recalibrate_batches=max(config.recalibrate_batches, 1))
    if config.max_drop is not None:
        ratios = report.ratios_for_drop(config.max_drop)
    elif config.macs_reduction is not None:
        ratios = report.ratios_for_macs(macs_reduction=config.macs_reduction)
    else:
        return SensitivityRun(report)
    pruned = prune_channels(model, example_inputs, ratio=0.0, scope="local", importance=config.importance,
                            ratios=ratios)
    return SensitivityRun(report, ratios, pruned)


def _trial(model: nn.Module, inputs: tuple, name: str, scores: torch.Tensor, graph: ChannelGraph,
           removed: torch.Tensor, val_data: Any, recalibration_data: Any = None, recalibrate_batches: int = 20) -> float:
    """Accuracy of a copy of ``model`` with the channels ``removed`` (of the original's graph) gone."""
    trial = copy.deepcopy(model)
    trial_graph = build_graph(trial, inputs)  # same trace, so channel ids match the original's
    if trial_graph.num_channels != graph.num_channels:
        raise ConfigError(f"{name}: the model traced differently twice; sensitivity needs a deterministic forward")
    make_plan(trial_graph, removed, inputs, _config()).apply()
    if recalibration_data is not None:
        from slimkit.train.bn_recalibration import recalibrate_bn

        recalibrate_bn(trial, recalibration_data, batches=recalibrate_batches)
    return accuracy(trial, val_data)


def _config() -> Any:

    return PruneConfig(scope="local", ratio=0.0)
