"""Stage ``prune_weights``: unstructured pruning (magnitude, global magnitude, iterative, AGP, lottery ticket)
with fine-tuning under kept masks, per-layer sparsity in the metrics, plots and a sparse copy of the weights."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
from torch import nn

from slimkit.core.config import parse_config
from slimkit.core.errors import ConfigError
from slimkit.core.io import atomic_write, atomic_write_bytes
from slimkit.prune.unstructured import (
    AGPHook,
    MaskHook,
    ScheduleReport,
    Scope,
    Spacing,
    SparsityReport,
    agp_plan,
    iterative_prune,
    lottery_ticket,
    make_permanent,
    prune_weights,
    sparse_size_bytes,
    sparsity_report,
    to_sparse_state_dict,
)
from slimkit.prune.unstructured.magnitude import Ratio
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext
from slimkit.train import TrainConfig


class Method(str, Enum):
    MAGNITUDE = "magnitude"  # one shot, each layer to `sparsity`
    GLOBAL_MAGNITUDE = "global_magnitude"  # one shot, one ranking over all layers
    ITERATIVE = "iterative"  # Han et al. 2015: rounds of prune + fine-tune
    AGP = "agp"  # Zhu & Gupta 2017: cubic sparsity ramp while fine-tuning
    LOTTERY = "lottery"  # Frankle & Carbin 2019: train, prune, rewind survivors, retrain


_DEFAULT_SCOPE = {Method.MAGNITUDE: Scope.LAYER, Method.GLOBAL_MAGNITUDE: Scope.GLOBAL, Method.ITERATIVE: Scope.GLOBAL,
                  Method.AGP: Scope.GLOBAL, Method.LOTTERY: Scope.LAYER}


#: fine-tuning defaults: shorter and gentler than training from scratch (the ``finetune`` stage's defaults)
FINETUNE_DEFAULTS: dict[str, Any] = {"epochs": 1, "lr": 0.01}


@dataclass(frozen=True)
class PruneWeightsConfig:
    """Options of the ``prune_weights`` stage.

    Attributes:
        method: ``magnitude`` | ``global_magnitude`` | ``iterative`` | ``agp`` | ``lottery``.
        sparsity: final fraction of prunable weights at zero, in [0, 1).
        scope: ``global`` or ``layer``; default ``layer`` for magnitude and lottery, ``global`` otherwise.
        per_layer: ``{module fqn or glob: sparsity}`` for layers pruned to their own final sparsity.
        ignore: module fqns or globs left dense.
        rounds: prune-retrain rounds of ``iterative`` and ``lottery`` (targets spaced by ``spacing``).
        spacing: ``geometric`` (same share of survivors per round) or ``linear``.
        initial_sparsity: AGP's ``s_i``.
        agp_events: AGP's ``n`` (pruning events after the first).
        agp_end_fraction: share of the fine-tuning steps over which AGP raises the sparsity (the rest fine-tunes
            at the final sparsity).
        rewind_step: lottery ticket: optimizer step of the first training that survivors are reset to (0 = init).
        finetune: training options (see ``train``) for each fine-tuning (per round); ``epochs: 0`` skips it
            for the one-shot methods; with ``distill_alpha > 0`` the teacher is the model before compression.
        permanent: remove the masks at the end (zeros stay; a later training may then regrow them).
        sparse_export: write ``weights.sparse.pt`` (CSR indices + values) in the stage folder.
    """

    method: Method = Method.AGP
    sparsity: Ratio = 0.9
    scope: Scope | None = None
    per_layer: dict[str, Ratio] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    rounds: int = 3
    spacing: Spacing = Spacing.GEOMETRIC
    initial_sparsity: Ratio = 0.0
    agp_events: int = 20
    agp_end_fraction: float = 0.75
    rewind_step: int = 0
    finetune: dict[str, Any] = field(default_factory=dict)  # TrainConfig options; a TrainConfig after init
    permanent: bool = False
    sparse_export: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", Method(self.method))
        if self.scope is not None:
            object.__setattr__(self, "scope", Scope(self.scope))
        if not isinstance(self.finetune, TrainConfig):  # checked here so unknown keys are named, not ignored
            options = {**FINETUNE_DEFAULTS, **dict(self.finetune)}
            object.__setattr__(self, "finetune", parse_config(TrainConfig, options, where="finetune"))
        for name, low in (("rounds", 1), ("agp_events", 1), ("rewind_step", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"{name}: expected an integer >= {low}, got {value!r}")
        if not 0.0 < self.agp_end_fraction <= 1.0:
            raise ConfigError(f"agp_end_fraction: must be in (0, 1], got {self.agp_end_fraction}")
        if self.initial_sparsity > self.sparsity:
            raise ConfigError(f"initial_sparsity: {self.initial_sparsity} exceeds sparsity {self.sparsity}")
        if self.method in (Method.AGP, Method.ITERATIVE, Method.LOTTERY) and self.finetune.epochs < 1:
            raise ConfigError(f"finetune.epochs: method {self.method.value} trains; needs epochs >= 1")


def _steps_per_epoch(ctx: StageContext, config: TrainConfig) -> int:
    steps = math.ceil(len(ctx.data.train) / config.batch_size)
    cap = getattr(config, "max_steps_per_epoch", None)
    return min(steps, cap) if cap else steps


def _plots(ctx: StageContext, report: SparsityReport, curve: list[tuple[float, float]],
           schedule: Sequence[tuple[int, float]]) -> list[str]:
    from slimkit.report.plots import plot_bars, plot_curves

    names = [layer.name.removesuffix(".weight") for layer in report.layers]
    paths = [plot_bars({"sparsity": [layer.sparsity for layer in report.layers]}, names,
                       ctx.stage_dir / "sparsity_per_layer.png", ylabel="sparsity (fraction of weights at zero)",
                       title=f"sparsity per layer (overall {report.sparsity:.1%})")]
    if len(curve) > 1:
        xs, ys = zip(*curve)
        paths.append(plot_curves({"test accuracy": (xs, ys)}, ctx.stage_dir / "accuracy_vs_sparsity.png",
                                 xlabel="sparsity", ylabel="accuracy", title="accuracy vs sparsity"))
    if schedule:
        xs, ys = zip(*schedule)
        paths.append(plot_curves({"AGP": (xs, ys)}, ctx.stage_dir / "sparsity_schedule.png",
                                 xlabel="optimizer step", ylabel="sparsity", title="AGP sparsity schedule"))
    return [str(p.relative_to(ctx.run_dir)) if p.is_relative_to(ctx.run_dir) else str(p) for p in paths]


@register_stage("prune_weights", PruneWeightsConfig, compresses=True)
def prune_weights_stage(ctx: StageContext, config: PruneWeightsConfig) -> dict[str, Any]:
    """Prune individual weights to ``sparsity`` with the chosen method, fine-tuning with the masks kept."""
    model: nn.Module = ctx.model
    scope = config.scope or _DEFAULT_SCOPE[config.method]
    options = {"scope": scope.value, "per_layer": dict(config.per_layer), "ignore": tuple(config.ignore)}
    acc_dense = ctx.evaluate(split="test")["accuracy"]
    teacher = ctx.freeze_reference() if config.finetune.distill_alpha > 0 else None  # the model before compression
    runs = 0

    def train(m: nn.Module, hooks: Sequence[Any]) -> None:
        nonlocal runs
        runs += 1
        ctx.fit(config.finetune, model=m, hooks=list(hooks), teacher=teacher,
                checkpoint_dir=ctx.stage_dir / f"train-{runs}")

    def test_accuracy(m: nn.Module) -> float:
        return ctx.evaluate(m, split="test")["accuracy"]

    schedule: list[tuple[int, float]] = []
    rounds: ScheduleReport | None = None
    if config.method in (Method.MAGNITUDE, Method.GLOBAL_MAGNITUDE):
        prune_weights(model, sparsity=config.sparsity, **options)
        curve = [(0.0, acc_dense)]
        if config.finetune.epochs > 0:
            curve.append((config.sparsity, test_accuracy(model)))  # one-shot, before fine-tuning
            train(model, [MaskHook()])
    elif config.method is Method.AGP:
        total = config.finetune.epochs * _steps_per_epoch(ctx, config.finetune)
        start, events, frequency = agp_plan(total, end_fraction=config.agp_end_fraction, events=config.agp_events)
        hook = AGPHook(sparsity=config.sparsity, initial_sparsity=config.initial_sparsity, start_step=start,
                       num_steps=events, frequency=frequency, **options)
        train(model, [hook])
        schedule = list(hook.history)
        curve = [(0.0, acc_dense)]
    elif config.method is Method.ITERATIVE:
        rounds = iterative_prune(model, train, sparsity=config.sparsity, rounds=config.rounds,
                                 spacing=config.spacing, evaluate=test_accuracy, **options)
        curve = [(r.sparsity, r.accuracy) for r in rounds.rounds]
    else:
        rounds = lottery_ticket(model, train, sparsity=config.sparsity, rounds=config.rounds,
                                rewind_step=config.rewind_step, evaluate=test_accuracy, **options)
        curve = [(r.sparsity, r.accuracy) for r in rounds.rounds]

    report = sparsity_report(model, ignore=config.ignore)
    accuracy = test_accuracy(model)
    if not curve or curve[-1][0] != report.sparsity:
        curve.append((report.sparsity, accuracy))
    metrics: dict[str, Any] = {
        "method": config.method.value,
        "sparsity": report.sparsity,
        "compression": report.compression,
        "nonzero": report.nonzero,
        "acc_dense": acc_dense,
        "accuracy": accuracy,
        "per_layer": report.per_layer,
        "plots": _plots(ctx, report, curve, schedule),
    }
    if rounds is not None:
        metrics["rounds"] = [vars(r).copy() for r in rounds.rounds]
    if config.sparse_export:
        sparse = to_sparse_state_dict(model, layout="csr")
        path = atomic_write(ctx.stage_dir / "weights.sparse.pt", lambda f: torch.save(sparse, f))
        metrics["sparse_size_bytes"] = sparse_size_bytes(sparse)
        metrics["dense_size_bytes"] = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        metrics["sparse_file"] = str(path.relative_to(ctx.run_dir)) if path.is_relative_to(ctx.run_dir) else str(path)
        # the stored size is that of the sparse file (the mask buffers are training machinery, never saved)
        metrics["summary"] = {"size_bytes": path.stat().st_size}
    atomic_write_bytes(ctx.stage_dir / "sparsity.txt", (report.table() + "\n").encode())
    if config.permanent:
        make_permanent(model)
    return metrics
