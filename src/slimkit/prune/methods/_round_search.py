"""One round of ``progressive_prune(scope="auto")``: several per-layer prunings of equal MACs, the best kept.

A global ranking alone lost to uniform pruning on the full VGG benchmark (3.76x vs 6.49x MACs at the target): its
rounds took mostly wide late layers, which save few MACs per channel. So each round builds candidates that all
remove the same MACs as one uniform round (``step`` of every layer's channels): the uniform vector itself, the
global de-biased ranking, the global ranking per MAC saved, and a few log-normal perturbations of uniform (as
:func:`slimkit.search_ratios` samples them). Each is scored EagleEye-style (prune a copy, re-estimate BatchNorm on
a few hundred training samples, minus the loss on a slice of the validation data, never the test set) and the best
is applied. Uniform is always a candidate, so a round is never worse than uniform's by that score.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from slimkit.core.errors import ConfigError
from slimkit.prune.search import SearchConfig, _apply, _fill, _fit, _Space
from slimkit.prune.structured import PruneReport


@dataclass(frozen=True)
class RoundSearchConfig:
    """How ``scope="auto"`` picks each round's per-layer ratios.

    Attributes:
        samples: log-normal perturbations of the uniform vector scored besides uniform and the two global rankings.
        spread: standard deviation of the log-normal perturbation (0.3: ratios mostly within 0.75x-1.35x uniform's).
        calib_samples: training samples BatchNorm statistics are re-estimated on for each candidate.
        val_samples: validation samples each candidate is scored on (minus the cross-entropy; higher is better).
        batch_size: batch size of recalibration and scoring.
        seed: seeds the perturbations and the data slices; the same seed gives the same rounds.
        finetune_top: candidates fine-tuned in each round (the round's fine-tuning, each from the same model);
            the one with the best validation accuracy is kept. 1 keeps the best score alone. With 2 or more,
            uniform is always a finalist: the score is a proxy (on the full VGG benchmark one round's best-scored
            candidate fine-tuned 0.5 points below what uniform rounds reached), uniform the robust prior.
            Costs ``finetune_top`` fine-tunings per round.
    """

    samples: int = 4
    spread: float = 0.3
    calib_samples: int = 512
    val_samples: int = 1000
    batch_size: int = 128
    seed: int = 0
    finetune_top: int = 1

    def __post_init__(self) -> None:
        if self.samples < 0 or self.spread < 0:
            raise ConfigError("RoundSearchConfig.samples and .spread must be >= 0")
        for name in ("calib_samples", "val_samples", "batch_size", "finetune_top"):
            if getattr(self, name) < 1:
                raise ConfigError(f"RoundSearchConfig.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class RoundCandidate:
    origin: str  # uniform | global | global_macs | sample
    ratios: dict[str, float]
    macs: int
    score: float | None = None


class Evaluator:
    """Default score: prune a copy, recalibrate BatchNorm on a training slice, minus the loss on a validation slice."""

    def __init__(self, train_data: Any, val_data: Any, config: RoundSearchConfig) -> None:
        gen = torch.Generator().manual_seed(config.seed)
        self.calib = _slice(train_data, config.calib_samples, gen)
        self.val = _slice(val_data, config.val_samples, gen)
        self.config = config

    def __call__(self, model: nn.Module, inputs: tuple, space: _Space, ratios: dict[str, float]) -> float:
        from slimkit.train.bn_recalibration import recalibrate_bn
        from slimkit.train.evaluation import evaluate

        pruned = copy.deepcopy(model)
        _apply(pruned, inputs, space, ratios, verify="never")
        bs = self.config.batch_size
        recalibrate_bn(pruned, self.calib, batches=max(1, -(-len(self.calib) // bs)), batch_size=bs,
                       seed=self.config.seed)
        return -float(evaluate(pruned, self.val, batch_size=bs)["loss"])


def _slice(data: Any, n: int, gen: torch.Generator) -> Any:
    if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
        return data  # an iterable of batches: used whole
    perm = torch.randperm(len(data), generator=gen).tolist()
    return torch.utils.data.Subset(data, perm[:n])


def round_candidates(model: nn.Module, inputs: tuple, step: float, *, importance: Any, round_to: int | None,
                     ignore: tuple[str, ...], gen: torch.Generator, config: RoundSearchConfig,
                     data_kw: dict[str, Any] | None = None) -> tuple[_Space, int, list[RoundCandidate]]:
    """``(space, MACs budget, candidates)`` of one round: all remove about the MACs of one uniform round.

    Uniform drops ``ceil(step * n)`` channels of every group of ``n > 1`` (at least one, so a small step never
    stalls the loop); its MACs are the budget the others are fitted to.
    """
    cap = min(0.9, max(2 * step, 0.5))
    space = _Space(model, inputs, SearchConfig(macs_reduction=2.0,  # placeholder: only the space's fields are used
                                               importance=importance, ignore=ignore, round_to=round_to,
                                               max_ratio=cap, progress=False), data_kw)
    sizes = [g.channels.numel() for g in space.groups]
    uniform = torch.tensor([min(max(1, math.ceil(step * n - 1e-9)), n - 1) / n for n in sizes], dtype=torch.float64)
    budget = space.costs(uniform)[0]
    out = [RoundCandidate("uniform", space.as_dict(uniform), budget)]
    if budget >= space.macs0:
        return space, budget, out
    for origin in ("global", "global_macs"):
        vec = _global_vector(model, inputs, space, budget, step, origin == "global_macs", importance, round_to, ignore,
                             space.data_kw)
        if vec is not None:
            vec = _fill(space, vec, "macs", budget)
            out.append(RoundCandidate(origin, space.as_dict(vec), space.costs(vec)[0]))
    for _ in range(config.samples):
        direction = torch.exp(config.spread * torch.randn(len(sizes), generator=gen, dtype=torch.float64))
        vec = _fit(space, direction, "macs", budget)
        if vec is not None:
            out.append(RoundCandidate("sample", space.as_dict(vec), space.costs(vec)[0]))
    # a candidate over budget (a global plan past its last rounding step) or removing far less is not comparable
    removed = space.macs0 - budget
    out = [c for c in out if c.macs <= budget and space.macs0 - c.macs >= 0.9 * removed]
    return space, budget, out


def _global_vector(model: nn.Module, inputs: tuple, space: _Space, budget: int, step: float, per_macs: bool,
                   importance: Any, round_to: int | None, ignore: tuple[str, ...],
                   data_kw: dict[str, Any]) -> torch.Tensor | None:
    """Per-group ratios of the engine's global de-biased ranking (or of importance per MAC) at ``budget`` MACs."""
    from slimkit.prune.methods.progressive import _round_plan

    options = dict(ratio=1 - budget / space.macs0, importance=importance, scope="global", normalize="mean",
                   debias=True, round_to=round_to, ignore=tuple(ignore), max_group_ratio=min(0.9, 2 * step))
    if not per_macs:
        options.update(target_macs=budget, allow_partial=True)
        options.pop("ratio")
    try:
        with warnings.catch_warnings():  # a plan a step past the budget is expected: _fill / the filter handle it
            warnings.simplefilter("ignore")
            plan = _round_plan(model, inputs, options, per_macs, data_kw)
    except ConfigError:
        return None
    counts = {g.name: int(plan.removed[g.channels].sum()) for g in plan.graph.groups}
    return torch.tensor([counts.get(g.name, 0) / g.channels.numel() for g in space.groups], dtype=torch.float64)


def pick(model: nn.Module, inputs: tuple, space: _Space, candidates: list[RoundCandidate],
         score: Callable[[nn.Module, tuple, _Space, dict[str, float]], float]) -> RoundCandidate:
    """Score every candidate (in order; ties keep the earlier, uniform first) and return the best."""
    best = None
    for c in candidates:
        c.score = float(score(model, inputs, space, c.ratios))
        if best is None or c.score > best.score:
            best = c
    assert best is not None
    return best


def finalists(candidates: list[RoundCandidate], k: int) -> list[RoundCandidate]:
    """The ``k`` best-scored candidates, best first; with ``k >= 2`` uniform replaces the last if it is not among them."""
    ranked = sorted(candidates, key=lambda c: -(c.score if c.score is not None else -math.inf))
    top = ranked[:k]
    if k >= 2 and not any(c.origin == "uniform" for c in top):
        top[-1] = next(c for c in ranked if c.origin == "uniform")
    return top


def apply_candidate(model: nn.Module, inputs: tuple, space: _Space, candidate: RoundCandidate) -> PruneReport:
    return _apply(model, inputs, space, candidate.ratios)
