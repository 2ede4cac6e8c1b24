"""Automatic per-layer pruning ratios (EagleEye-style search): :func:`search_ratios`.

Many per-group ratio vectors that meet a MACs or parameter budget are sampled; each is scored cheaply (prune a deep
copy, re-estimate BatchNorm statistics on a few hundred training samples, accuracy on a held-out slice of the
training data, never the test set); the best few may be fine-tuned briefly, and the winner is applied to the model.
An optional evolutionary phase mutates and crosses the best vectors. Seeded and deterministic.

    >>> result = slimkit.search_ratios(model, x, train_set, SearchConfig(macs_reduction=3.0, candidates=64))
    >>> result.best.ratios, result.report.macs_reduction
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from slimkit.core.errors import ConfigError
from slimkit.prune.config import Budget, PruneConfig, one_budget
from slimkit.prune.importance import checked_importance, importance_field
from slimkit.prune.structured import PruneReport, plan_pruning, prune_channels

__all__ = ["Candidate", "SearchConfig", "SearchResult", "search_ratios"]


@dataclass(frozen=True)
class SearchConfig:
    """Options of :func:`search_ratios`.

    Attributes:
        budget: what the search must meet, the same :class:`Budget` as :class:`PruneConfig`'s, of kind ``macs``
            or ``params`` (``Budget("macs", 3.0, factor=True)``: 3x fewer MACs; in a recipe ``budget: {kind: macs,
            value: 3, factor: true}``). The fields below are its shorthands: give exactly one of them or it.
        macs_reduction: shorthand: MACs of the pruned model at most ``1/macs_reduction`` of now.
        target_macs: shorthand: at most this many MACs of the example input.
        params_reduction: shorthand: parameters at most ``1/params_reduction`` of now.
        target_params: shorthand: at most this many parameters.
        tolerance: a candidate must use at least ``1 - tolerance`` of the budget (so none wastes it).
        candidates: random vectors sampled and scored.
        generations: evolutionary rounds after sampling (0: off); each scores ``population`` new vectors.
        population: vectors per evolutionary round, made from the ``parents`` best by crossover and mutation.
        parents: how many of the best vectors breed.
        mutation: standard deviation of the Gaussian noise added to a child's ratios.
        top_k: how many of the best candidates are fine-tuned (when a ``finetune`` function is given).
        max_ratio: never remove more than this fraction of one group.
        importance: criterion that picks which channels go inside a group: a name, a mapping
            (``{name: l2}``) or a criterion object, resolved as :class:`PruneConfig` does (docs/pruning.md).
        ignore: module names or globs left whole.
        round_to: keep channel counts at multiples of this.
        calib_samples: training samples used to recalibrate BatchNorm for each candidate.
        val_samples: held-out training samples used to score each candidate (disjoint from ``calib_samples``).
        batch_size: batch size of recalibration and scoring.
        eval_batch: candidates scored per progress-bar step (the pruned copies of one batch are built together).
        seed: seeds sampling, the data split and evolution; the same seed gives the same result.
        progress: show a progress bar.
    """

    budget: Budget | None = field(default=None, metadata={"flag": False})
    macs_reduction: float | None = None
    target_macs: float | None = None
    params_reduction: float | None = None
    target_params: float | None = None
    tolerance: float = 0.03
    candidates: int = 50
    generations: int = 0
    population: int = 16
    parents: int = 8
    mutation: float = 0.1
    top_k: int = 3
    max_ratio: float = 0.9
    importance: Any = importance_field()
    ignore: tuple[str, ...] = ()
    round_to: int | None = None
    calib_samples: int = 512
    val_samples: int = 1000
    batch_size: int = 128
    eval_batch: int = 8
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        try:
            budget = one_budget(self, BUDGET_SHORTHANDS)
            object.__setattr__(self, "importance", checked_importance(self.importance))
        except ValueError as err:
            raise ConfigError(f"SearchConfig: {err}") from None
        if budget is None:
            raise ConfigError(f"SearchConfig: give exactly one of budget, {', '.join(BUDGET_SHORTHANDS)} (got none)")
        if budget.kind not in ("macs", "params"):
            raise ConfigError(f"SearchConfig.budget: the search meets a macs or params budget, not {budget.kind}")
        if not 0.0 < self.tolerance < 1.0:
            raise ConfigError(f"SearchConfig.tolerance must be in (0, 1), got {self.tolerance}")
        if not 0.0 < self.max_ratio < 1.0:
            raise ConfigError(f"SearchConfig.max_ratio must be in (0, 1), got {self.max_ratio}")
        for name in ("candidates", "top_k", "population", "parents", "eval_batch", "calib_samples",
                     "val_samples", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"SearchConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.generations < 0 or self.mutation < 0:
            raise ConfigError("SearchConfig.generations and SearchConfig.mutation must be >= 0")
        object.__setattr__(self, "ignore", tuple(self.ignore))

    @property
    def effective_budget(self) -> Budget:
        """The one budget in force: ``budget`` or the shorthand given."""
        budget = one_budget(self, BUDGET_SHORTHANDS)
        assert budget is not None  # __post_init__ requires one
        return budget

    def to_dict(self) -> dict[str, Any]:
        """The fields as given (criterion and budget objects kept), e.g. to rebuild it with changes."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: The keywords that build :attr:`SearchConfig.budget` (``Budget.of(macs_reduction=3)``), as in PruneConfig.
BUDGET_SHORTHANDS = ("macs_reduction", "target_macs", "params_reduction", "target_params")


@dataclass
class Candidate:
    """One per-group ratio vector and what it scored."""

    ratios: dict[str, float]
    macs: int
    params: int
    score: float  # accuracy after BN recalibration (or the injected evaluator's value)
    finetuned_score: float | None = None
    origin: str = "sample"  # sample | evolve


@dataclass
class SearchResult:
    """All scored candidates, the chosen one and the report of applying it to the model."""

    best: Candidate
    candidates: list[Candidate]
    report: PruneReport
    macs_budget: int | None
    params_budget: int | None
    search_s: float
    groups: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"best": asdict(self.best), "candidates": [asdict(c) for c in self.candidates],
                "report": self.report.to_dict(), "macs_budget": self.macs_budget,
                "params_budget": self.params_budget, "search_s": self.search_s, "groups": self.groups}


class _Space:
    """The prunable groups of a model and the cost model that prices a ratio vector without pruning."""

    def __init__(self, model: nn.Module, example_inputs: Any, config: SearchConfig) -> None:
        self.prune_config = PruneConfig(ratio=0.0, scope="local", importance=config.importance,
                                        ignore=config.ignore, round_to=config.round_to,
                                        max_group_ratio=config.max_ratio)
        plan = plan_pruning(model, example_inputs, self.prune_config)
        self.graph = plan.graph
        ignored = {str(name) for name, _ in plan.excluded}
        self._empty = torch.zeros_like(plan.removed)
        self.groups = [g for g in self.graph.groups if g.name not in ignored and g.channels.numel() > 1]
        if not self.groups:
            raise ConfigError("search_ratios: the model has no prunable channel group")
        self.names = [g.name.split(" ")[0] for g in self.groups]
        self.macs0 = self.graph.macs()
        self.params0 = self.graph.params()
        self.step = config.round_to or 1
        self.max_ratio = config.max_ratio

    def removed(self, ratios: torch.Tensor) -> torch.Tensor:
        mask = self._empty.clone()
        for g, r in zip(self.groups, ratios.tolist()):
            n = g.channels.numel()
            drop = self.drop_count(n, r)
            if drop:
                mask[g.channels[:drop]] = True
        return mask

    def drop_count(self, n: int, ratio: float) -> int:
        keep = max(1, round(n * (1.0 - ratio)))
        if self.step > 1:
            keep = min(n, max(self.step, round(keep / self.step) * self.step))
        return n - keep

    def costs(self, ratios: torch.Tensor) -> tuple[int, int]:
        removed = self.removed(ratios)
        return self.graph.macs(removed), self.graph.params(removed)

    def as_dict(self, ratios: torch.Tensor) -> dict[str, float]:
        return {n: round(float(r), 4) for n, r in zip(self.names, ratios.tolist())}


def _budget(space: _Space, config: SearchConfig) -> tuple[str, int]:
    """``(kind, the most MACs or parameters a candidate may have)`` of the config's budget on this model."""
    budget = config.effective_budget
    now = space.macs0 if budget.kind == "macs" else space.params0
    return budget.kind, int(now / budget.value if budget.factor else budget.value)


def _fit(space: _Space, direction: torch.Tensor, kind: str, budget: int) -> torch.Tensor | None:
    """Scale ``direction`` (per-group weights >= 0) so the ratios ``clip(s * direction)`` land just under budget."""
    def cost(s: float) -> int:
        return space.costs((direction * s).clamp(0.0, space.max_ratio))[0 if kind == "macs" else 1]

    hi = space.max_ratio / max(float(direction.max()), 1e-9)
    if cost(hi) > budget:
        return None
    lo = 0.0
    for _ in range(30):
        mid = (lo + hi) / 2
        if cost(mid) > budget:
            lo = mid
        else:
            hi = mid
    return (direction * hi).clamp(0.0, space.max_ratio)


def _meets(space: _Space, ratios: torch.Tensor, kind: str, budget: int, tolerance: float) -> bool:
    used = space.costs(ratios)[0 if kind == "macs" else 1]
    return (1.0 - tolerance) * budget <= used <= budget


def _split(data: Any, config: SearchConfig) -> tuple[Any, Any]:
    n = len(data)
    need = config.calib_samples + config.val_samples
    if n < 2:
        raise ConfigError(f"search_ratios: data has {n} samples; need calibration and held-out samples")
    gen = torch.Generator().manual_seed(config.seed)
    perm = torch.randperm(n, generator=gen).tolist()
    if need > n:
        c = max(1, n * config.calib_samples // need)
    else:
        c = config.calib_samples
    calib = torch.utils.data.Subset(data, perm[:c])
    val = torch.utils.data.Subset(data, perm[c:c + config.val_samples])
    return calib, val


def _default_evaluator(model: nn.Module, example_inputs: Any, data: Any, space: _Space,
                       config: SearchConfig) -> Callable[[dict[str, float]], float]:
    from slimkit.train.bn_recalibration import recalibrate_bn
    from slimkit.train.evaluation import evaluate

    calib, val = _split(data, config)
    batches = max(1, -(-len(calib) // config.batch_size))

    def score(ratios: dict[str, float]) -> float:
        pruned = copy.deepcopy(model)
        _apply(pruned, example_inputs, space, ratios, verify="never")
        recalibrate_bn(pruned, calib, batches=batches, batch_size=config.batch_size, seed=config.seed)
        return float(evaluate(pruned, val, batch_size=config.batch_size)["accuracy"])

    return score


def _apply(model: nn.Module, example_inputs: Any, space: _Space, ratios: dict[str, float], *,
           verify: str = "auto") -> PruneReport:
    cfg = PruneConfig(ratio=0.0, scope="local", importance=space.prune_config.importance,
                      ignore=space.prune_config.ignore, round_to=space.prune_config.round_to,
                      max_group_ratio=space.max_ratio, ratios={n: r for n, r in ratios.items() if r > 0},
                      verify=verify)
    return prune_channels(model, example_inputs, cfg)


def search_ratios(model: nn.Module, example_inputs: Any, data: Any, config: SearchConfig | None = None, *,
                  evaluate: Callable[[dict[str, float]], float] | None = None,
                  finetune: Callable[[nn.Module], float] | None = None, **options: Any) -> SearchResult:
    """Find per-group pruning ratios under a MACs/params :class:`Budget`, and prune ``model`` with the best in place.

    Args:
        model: the trained model (pruned in place at the end, with the chosen ratios).
        example_inputs: a tensor or tuple to trace with.
        data: the TRAINING dataset of ``(x, y)``; ``calib_samples`` of it recalibrate BatchNorm and a disjoint
            ``val_samples`` slice scores candidates. Never pass the test set.
        config: a :class:`SearchConfig`, or give its fields as keywords (``macs_reduction=3.0`` is the shorthand
            of ``budget=Budget("macs", 3.0, factor=True)``); keywords given with a config replace its fields.
        evaluate: replaces the default scoring: ``ratios dict -> score`` (higher is better).
        finetune: called as ``finetune(pruned_copy) -> score`` for each of the ``top_k`` candidates; the best
            fine-tuned score wins. Without it the best recalibrated score wins.

    Returns:
        SearchResult: every candidate (ratios, MACs, params, score), the best, and the apply report.
    """
    if config is None:
        config = SearchConfig(**options)
    elif options:
        try:
            config = replace(config, **options)
        except TypeError as err:  # an unknown keyword
            raise ConfigError(f"search_ratios: {err}") from None
    t0 = time.perf_counter()
    space = _Space(model, example_inputs, config)
    kind, budget = _budget(space, config)
    score_fn = evaluate if evaluate is not None else _default_evaluator(model, example_inputs, data, space, config)
    gen = torch.Generator().manual_seed(config.seed)
    L = len(space.groups)

    seen: set[tuple[float, ...]] = set()
    pool: list[tuple[torch.Tensor, str]] = []
    attempts = 0
    while len(pool) < config.candidates and attempts < config.candidates * 20:
        attempts += 1
        direction = torch.rand(L, generator=gen, dtype=torch.float64)
        fitted = _fit(space, direction, kind, budget)
        if fitted is None or not _meets(space, fitted, kind, budget, config.tolerance):
            continue
        key = tuple(round(float(r), 4) for r in fitted)
        if key not in seen:
            seen.add(key)
            pool.append((fitted, "sample"))
    if not pool:
        raise ConfigError(f"search_ratios: no ratio vector meets the {kind} budget {budget} within "
                          f"max_ratio={config.max_ratio}; loosen the budget or raise max_ratio")

    scored: list[tuple[torch.Tensor, Candidate]] = []
    total = len(pool) + config.generations * config.population
    bar = tqdm(total=total, desc="search_ratios", unit="cand", disable=not config.progress)

    def run(batch: list[tuple[torch.Tensor, str]]) -> None:
        for start in range(0, len(batch), config.eval_batch):
            for vec, origin in batch[start:start + config.eval_batch]:
                macs, params = space.costs(vec)
                ratios = space.as_dict(vec)
                scored.append((vec, Candidate(ratios, macs, params, float(score_fn(ratios)), origin=origin)))
            bar.update(len(batch[start:start + config.eval_batch]))

    run(pool)
    for _ in range(config.generations):
        ranked = sorted(scored, key=lambda t: -t[1].score)[:config.parents]
        children: list[tuple[torch.Tensor, str]] = []
        tries = 0
        while len(children) < config.population and tries < config.population * 20:
            tries += 1
            i, j = torch.randint(len(ranked), (2,), generator=gen).tolist()
            pick = torch.rand(L, generator=gen) < 0.5
            child = torch.where(pick, ranked[i][0], ranked[j][0])
            child = child + config.mutation * torch.randn(L, generator=gen, dtype=torch.float64)
            fitted = _fit(space, child.clamp(min=0.0) + 1e-6, kind, budget)
            if fitted is None or not _meets(space, fitted, kind, budget, config.tolerance):
                continue
            key = tuple(round(float(r), 4) for r in fitted)
            if key not in seen:
                seen.add(key)
                children.append((fitted, "evolve"))
        run(children)
    bar.close()

    candidates = [c for _, c in scored]
    order = sorted(range(len(candidates)), key=lambda i: -candidates[i].score)
    best = candidates[order[0]]
    if finetune is not None:
        for i in order[:config.top_k]:
            trial = copy.deepcopy(model)
            _apply(trial, example_inputs, space, candidates[i].ratios)
            candidates[i].finetuned_score = float(finetune(trial))
        best = max((candidates[i] for i in order[:config.top_k]), key=lambda c: c.finetuned_score)
    report = _apply(model, example_inputs, space, best.ratios)
    return SearchResult(best=best, candidates=candidates, report=report,
                        macs_budget=budget if kind == "macs" else None,
                        params_budget=budget if kind == "params" else None,
                        search_s=time.perf_counter() - t0, groups=list(space.names))


def plot_search(result: SearchResult, folder: Any) -> list[str]:
    """``candidates.png`` (score after recalibration vs MACs, best marked) and ``ratios.png`` (chosen per-group
    ratios vs the uniform ratio at the same MACs) in ``folder``; returns their paths."""
    from pathlib import Path

    from slimkit.report.plots import plot_bars, plot_curves

    folder = Path(folder)
    pts = sorted(result.candidates, key=lambda c: c.macs)
    curves = {"candidates": ([c.macs / 1e6 for c in pts], [c.score for c in pts]),
              "best": ([result.best.macs / 1e6], [result.best.score])}
    a = plot_curves(curves, folder / "candidates.png", xlabel="MMACs", ylabel="accuracy after BN recalibration",
                    title="search_ratios candidates")
    names = list(result.best.ratios)
    uniform = 1.0 - (result.report.macs_after / max(result.report.macs_before, 1)) ** 0.5  # ~ratio giving those MACs
    b = plot_bars({"searched": [result.best.ratios[n] for n in names], "uniform": [uniform] * len(names)}, names,
                  folder / "ratios.png", ylabel="ratio removed", title="per-layer ratios")
    return [str(a), str(b)]
