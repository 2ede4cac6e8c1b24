"""Prune-and-retrain schedules: iterative pruning (Han et al. 2015) and lottery-ticket rewinding (Frankle & Carbin).

Both take the training as a callback ``train(model, hooks)`` (e.g. ``lambda m, h: fit(m, data, cfg, hooks=h)``)
so they run with :func:`slimkit.train.fit`, a recipe's ``ctx.fit`` or a hand-written loop alike; the hooks passed
keep the masks (and, for lottery tickets, save the rewind point).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from torch import nn

from slimkit.core.config import check_ratio
from slimkit.core.errors import ConfigError
from slimkit.core.modules import FilterFn
from slimkit.prune.unstructured.hooks import MaskHook, RewindHook
from slimkit.prune.unstructured.magnitude import prune_weights
from slimkit.prune.unstructured.masks import PRUNABLE_TYPES, apply_masks
from slimkit.prune.unstructured.report import SparsityReport, sparsity_report

TrainFn = Callable[[nn.Module, Sequence[Any]], Any]
EvalFn = Callable[[nn.Module], float]


class Spacing(str, Enum):
    """How round targets approach the final sparsity: ``geometric`` prunes the same share of the survivors each
    round (as Han et al. and Frankle & Carbin do), ``linear`` adds the same sparsity each round."""

    GEOMETRIC = "geometric"
    LINEAR = "linear"


def round_sparsities(sparsity: float, rounds: int, spacing: str | Spacing = Spacing.GEOMETRIC) -> list[float]:
    """Sparsity targets of ``rounds`` rounds ending at ``sparsity``.

    Geometric: ``1 - (1 - s)**(r / R)``, i.e. each round keeps the same fraction ``(1 - s)**(1/R)`` of survivors.
    """
    try:
        check_ratio("sparsity", sparsity)
    except ValueError as err:
        raise ConfigError(str(err).replace("sparsity must", "sparsity: must")) from None
    if not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"rounds: expected an integer >= 1, got {rounds!r}")
    try:
        spacing = Spacing(spacing)
    except ValueError:
        raise ConfigError(f"spacing: expected 'geometric' or 'linear', got {spacing!r}") from None
    if spacing is Spacing.LINEAR:
        return [sparsity * r / rounds for r in range(1, rounds + 1)]
    return [1.0 - (1.0 - sparsity) ** (r / rounds) for r in range(1, rounds + 1)]


@dataclass(frozen=True)
class RoundResult:
    """One prune-retrain round: its sparsity target, the measured sparsity and the accuracy after retraining."""

    round: int
    target: float
    sparsity: float
    accuracy: float | None


@dataclass(frozen=True)
class ScheduleReport:
    """Trajectory of a schedule (round 0 = before pruning) and the final per-layer sparsity."""

    rounds: tuple[RoundResult, ...]
    final: SparsityReport

    @property
    def sparsity(self) -> float:
        return self.final.sparsity

    def table(self) -> str:
        rows = [f"{'round':>5} {'target':>8} {'sparsity':>9} {'accuracy':>9}"]
        for r in self.rounds:
            acc = f"{r.accuracy:>9.4f}" if r.accuracy is not None else f"{'-':>9}"
            rows.append(f"{r.round:>5} {r.target:>8.2%} {r.sparsity:>9.2%} {acc}")
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rounds": [vars(r).copy() for r in self.rounds],
            **self.final.to_dict(),
        }


def _prune_train_rounds(model: nn.Module, train: TrainFn, targets: list[float], per_layer: Mapping[str, float] | None,
                        kw: dict, evaluate: EvalFn | None, progress: Callable[[RoundResult], None] | None,
                        results: list[RoundResult], *, after_prune: Callable[[], None] | None = None) -> ScheduleReport:
    """The rounds both schedules share: prune by magnitude to each target (``per_layer`` values are reached at the
    last round), ``after_prune`` (the ticket's rewind), retrain with the masks kept, record; then the report."""
    for r, target in enumerate(targets, 1):
        scaled = {k: 1.0 - (1.0 - v) ** (r / len(targets)) for k, v in (per_layer or {}).items()}
        prune_weights(model, sparsity=target, per_layer=scaled, **kw)
        if after_prune is not None:
            after_prune()
        train(model, [MaskHook()])
        results.append(_record(model, r, target, evaluate, kw))
        if progress:
            progress(results[-1])
    final = sparsity_report(model, filter_fn=kw["filter_fn"], ignore=kw["ignore"] or (), types=kw["types"])
    return ScheduleReport(tuple(results), final)


def _record(model: nn.Module, r: int, target: float, evaluate: EvalFn | None, kw: dict) -> RoundResult:
    report = sparsity_report(model, filter_fn=kw["filter_fn"], ignore=kw["ignore"] or (), types=kw["types"])
    return RoundResult(r, target, report.sparsity, float(evaluate(model)) if evaluate else None)


def iterative_prune(
    model: nn.Module,
    train: TrainFn,
    *,
    sparsity: float,
    rounds: int = 3,
    spacing: str | Spacing = Spacing.GEOMETRIC,
    scope: str = "global",
    per_layer: Mapping[str, float] | None = None,
    ignore: Iterable[str] | None = None,
    filter_fn: FilterFn | None = None,
    types: tuple[type[nn.Module], ...] = PRUNABLE_TYPES,
    evaluate: EvalFn | None = None,
    progress: Callable[[RoundResult], None] | None = None,
) -> ScheduleReport:
    """Han et al. 2015: prune by magnitude, fine-tune with masks kept, raise the sparsity, repeat.

    Args:
        model: a trained model, pruned in place.
        train: ``train(model, hooks)`` fine-tunes the model, passing ``hooks`` to the training loop.
        sparsity: the final sparsity; rounds: how many prune-finetune rounds; spacing: see :class:`Spacing`.
        scope, per_layer, ignore, filter_fn, types: as in :func:`prune_weights` (``per_layer`` values are final).
        evaluate: ``evaluate(model) -> accuracy`` recorded after each round (and before the first).
        progress: called with each round's result as it finishes.
    """
    targets = round_sparsities(sparsity, rounds, spacing)
    kw = {"scope": scope, "ignore": ignore, "filter_fn": filter_fn, "types": types}
    results = [_record(model, 0, 0.0, evaluate, kw)]
    return _prune_train_rounds(model, train, targets, per_layer, kw, evaluate, progress, results)


def rewind_weights(model: nn.Module, snapshot: Mapping[str, torch.Tensor]) -> None:
    """Reset ``model`` to a saved state (the rewind point) and zero its pruned weights again.

    Surviving weights take exactly their saved values; biases, norms and buffers are reset too (Frankle & Carbin
    reset the whole network to its early state, only the mask is kept).
    """
    model.load_state_dict(dict(snapshot))
    apply_masks(model)


def lottery_ticket(
    model: nn.Module,
    train: TrainFn,
    *,
    sparsity: float,
    rounds: int = 1,
    rewind_step: int = 0,
    scope: str = "layer",
    per_layer: Mapping[str, float] | None = None,
    ignore: Iterable[str] | None = None,
    filter_fn: FilterFn | None = None,
    types: tuple[type[nn.Module], ...] = PRUNABLE_TYPES,
    evaluate: EvalFn | None = None,
    progress: Callable[[RoundResult], None] | None = None,
) -> ScheduleReport:
    """Find a winning ticket: train, prune, rewind the survivors to their early values, retrain; ``rounds`` times.

    Args:
        model: an untrained (or freshly initialized) model; it ends trained at ``sparsity``.
        train: ``train(model, hooks)`` trains the model from its current weights, passing ``hooks`` on.
        sparsity: final sparsity, reached geometrically over ``rounds`` (iterative magnitude pruning).
        rewind_step: the optimizer step of the first training whose weights survivors are reset to (0 = the
            initialization, as in Frankle & Carbin 2019; a few hundred steps helps deeper nets, Frankle et al. 2020).
        scope: ``layer`` by default, as in the paper; per_layer, ignore, filter_fn, types: as in prune_weights.
        evaluate: ``evaluate(model) -> accuracy`` recorded after each training.

    Raises:
        ConfigError: when ``rewind_step`` lies beyond the first training.
    """
    targets = round_sparsities(sparsity, rounds)
    kw = {"scope": scope, "ignore": ignore, "filter_fn": filter_fn, "types": types}
    rewind = RewindHook(rewind_step)
    train(model, [MaskHook(), rewind])
    if rewind.snapshot is None:
        raise ConfigError(f"rewind_step: {rewind_step} lies beyond the {rewind.steps_done} steps of the first training")
    results = [_record(model, 0, 0.0, evaluate, kw)]
    if progress:
        progress(results[-1])
    snapshot = rewind.snapshot
    return _prune_train_rounds(model, train, targets, per_layer, kw, evaluate, progress, results,
                               after_prune=lambda: rewind_weights(model, snapshot))
