"""Automatic per-layer pruning ratios (EagleEye-style search): :func:`search_ratios`.

Many per-group ratio vectors that meet a MACs or parameter budget are sampled (the uniform vector first, most others
around it, some anywhere); each is scored cheaply (prune a deep copy, re-estimate BatchNorm statistics on a few
hundred training samples, loss on a held-out slice of the training data, never the test set); the best few may be
fine-tuned briefly, and the winner is applied to the model. An optional evolutionary phase mutates and crosses the
best vectors. Seeded and deterministic.

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
        candidates: vectors sampled and scored before evolution: the uniform vector, then two in three drawn around
            it (log-normal perturbations) and one in three uniformly at random per group.
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
    score: float  # minus the held-out loss after BN recalibration (or the injected evaluator's value)
    finetuned_score: float | None = None
    origin: str = "sample"  # uniform (the baseline, always scored first) | sample | evolve
    accuracy: float | None = None  # held-out accuracy after BN recalibration (default evaluator only)
    loss: float | None = None  # held-out cross-entropy after BN recalibration (default evaluator only)


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

    def __init__(self, model: nn.Module, example_inputs: Any, config: SearchConfig,
                 data_kw: dict[str, Any] | None = None) -> None:
        self.prune_config = PruneConfig(ratio=0.0, scope="local", importance=config.importance,
                                        ignore=config.ignore, round_to=config.round_to,
                                        max_group_ratio=config.max_ratio)
        # importance_data / loss_fn of data-driven criteria (taylor, apoz): every plan of this space ranks with them
        self.data_kw = dict(data_kw or {})
        plan = plan_pruning(model, example_inputs, self.prune_config, **self.data_kw)
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

    def exact_ratios(self, ratios: dict[str, float]) -> dict[str, float]:
        """Per-group ratios for :class:`PruneConfig` that remove exactly the channels this cost model priced.

        The pruner keeps ``int(n * (1 - ratio))`` channels (truncating), the cost model rounds; asking for half a
        channel less than the priced count makes both agree (a ratio rounded to 4 decimals could otherwise cost
        one channel per group: ResNet-20 candidates landed up to 8% under their MACs budget).
        """
        out = {}
        for g, name in zip(self.groups, self.names):
            n = g.channels.numel()
            drop = self.drop_count(n, ratios.get(name, 0.0))
            if drop:
                out[name] = (drop - 0.5) / n
        return out

    def costs(self, ratios: torch.Tensor) -> tuple[int, int]:
        removed = self.removed(ratios)
        return self.graph.macs(removed), self.graph.params(removed)

    def as_dict(self, ratios: torch.Tensor) -> dict[str, float]:
        """Group name -> the fraction of its channels the vector removes (whole channels, as priced)."""
        out = {}
        for g, name, r in zip(self.groups, self.names, ratios.tolist()):
            n = g.channels.numel()
            out[name] = round(self.drop_count(n, r) / n, 4)
        return out


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
    return _fill(space, (direction * hi).clamp(0.0, space.max_ratio), kind, budget)


def _fill(space: _Space, ratios: torch.Tensor, kind: str, budget: int, passes: int = 3) -> torch.Tensor:
    """Give back channels (one rounding step of a group at a time) while the vector stays under budget.

    Scaling alone stops at the last step of the rounded channel counts under the budget, which can leave a few
    percent of it unused (uniform pruning of ResNet-20 at 3x used 96.8%); candidates compared at equal MACs must
    not differ by that slack.
    """
    ratios = ratios.clone()
    sizes = [g.channels.numel() for g in space.groups]
    drops = [space.drop_count(n, float(r)) for n, r in zip(sizes, ratios.tolist())]
    for _ in range(passes):
        changed = False
        for i, n in enumerate(sizes):
            if drops[i] == 0:
                continue
            trial = ratios.clone()
            target = drops[i] - space.step
            trial[i] = max(target, 0) / n
            if space.drop_count(n, float(trial[i])) >= drops[i]:
                continue
            if space.costs(trial)[0 if kind == "macs" else 1] <= budget:
                ratios, drops[i], changed = trial, space.drop_count(n, float(trial[i])), True
        if not changed:
            break
    return ratios


def _direction(i: int, n_groups: int, gen: torch.Generator) -> torch.Tensor:
    """The ``i``-th sampling direction (per-group weights that :func:`_fit` scales to the budget).

    Two of three are log-normal perturbations of the uniform direction, with a spread cycling through 0.15, 0.3
    and 0.6 (so the neighbourhood of uniform pruning, where good vectors usually are, is covered densely, near and
    farther); one of three is uniform on [0, 1] per group (the EagleEye sampling: the whole space, sparsely).
    """
    if i % 3 == 0:
        return torch.rand(n_groups, generator=gen, dtype=torch.float64) + 1e-6
    spread = (0.15, 0.3, 0.6)[(i // 3) % 3]
    return torch.exp(spread * torch.randn(n_groups, generator=gen, dtype=torch.float64))


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


class _Evaluator:
    """The default score of a ratio vector: prune a deep copy, re-estimate BatchNorm statistics on the calibration
    slice, and return minus the mean cross-entropy on the held-out slice (higher is better).

    The loss, not the accuracy, ranks: on a few hundred images accuracy moves in steps of 1/val_samples and, right
    after pruning, is dominated by which classes the damaged network still separates; the loss is continuous and
    ranked candidates by their accuracy after fine-tuning far better (Spearman 0.85 against 0.60 for the accuracy,
    ResNet-20 at 3x fewer MACs, docs/benchmarks.md "auto_ratios"). Both are kept on each :class:`Candidate`.
    """

    def __init__(self, model: nn.Module, example_inputs: Any, data: Any, space: _Space,
                 config: SearchConfig) -> None:
        self.model, self.example_inputs, self.space, self.config = model, example_inputs, space, config
        self.calib, self.val = _split(data, config)
        self.batches = max(1, -(-len(self.calib) // config.batch_size))
        self.last: dict[str, float] = {}

    def __call__(self, ratios: dict[str, float]) -> float:
        from slimkit.train.bn_recalibration import recalibrate_bn
        from slimkit.train.evaluation import evaluate

        pruned = copy.deepcopy(self.model)
        _apply(pruned, self.example_inputs, self.space, ratios, verify="never")
        recalibrate_bn(pruned, self.calib, batches=self.batches, batch_size=self.config.batch_size,
                       seed=self.config.seed)
        result = evaluate(pruned, self.val, batch_size=self.config.batch_size)
        self.last = {"accuracy": float(result["accuracy"]), "loss": float(result["loss"])}
        return -self.last["loss"]


def _apply(model: nn.Module, example_inputs: Any, space: _Space, ratios: dict[str, float], *,
           verify: str = "auto") -> PruneReport:
    cfg = PruneConfig(ratio=0.0, scope="local", importance=space.prune_config.importance,
                      ignore=space.prune_config.ignore, round_to=space.prune_config.round_to,
                      max_group_ratio=space.max_ratio, ratios=space.exact_ratios(ratios), verify=verify)
    return prune_channels(model, example_inputs, cfg, **space.data_kw)


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
    score_fn = evaluate if evaluate is not None else _Evaluator(model, example_inputs, data, space, config)
    gen = torch.Generator().manual_seed(config.seed)
    L = len(space.groups)

    seen: set[tuple[float, ...]] = set()
    pool: list[tuple[torch.Tensor, str]] = []

    def add(direction: torch.Tensor, origin: str, into: list[tuple[torch.Tensor, str]]) -> bool:
        fitted = _fit(space, direction, kind, budget)
        if fitted is None or not _meets(space, fitted, kind, budget, config.tolerance):
            return False
        key = tuple(space.as_dict(fitted).values())  # whole channels: two vectors pruning alike are one
        if key in seen:
            return False
        seen.add(key)
        into.append((fitted, origin))
        return True

    add(torch.ones(L, dtype=torch.float64), "uniform", pool)  # the baseline is always a candidate
    attempts = 0
    while len(pool) < config.candidates and attempts < config.candidates * 20:
        attempts += 1
        add(_direction(len(pool), L, gen), "sample", pool)
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
                value = float(score_fn(ratios))
                extra = getattr(score_fn, "last", {})
                scored.append((vec, Candidate(ratios, macs, params, value, origin=origin,
                                              accuracy=extra.get("accuracy"), loss=extra.get("loss"))))
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
            add(child.clamp(min=0.0) + 1e-6, "evolve", children)
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
    acc = all(c.accuracy is not None for c in pts)

    def y(c: Candidate) -> float:
        return c.accuracy if acc and c.accuracy is not None else c.score

    curves = {"candidates": ([c.macs / 1e6 for c in pts], [y(c) for c in pts]),
              "best": ([result.best.macs / 1e6], [y(result.best)])}
    a = plot_curves(curves, folder / "candidates.png", xlabel="MMACs",
                    ylabel="held-out accuracy after BN recalibration" if acc else "score",
                    title="search_ratios candidates")
    names = list(result.best.ratios)
    uniform = 1.0 - (result.report.macs_after / max(result.report.macs_before, 1)) ** 0.5  # ~ratio giving those MACs
    b = plot_bars({"searched": [result.best.ratios[n] for n in names], "uniform": [uniform] * len(names)}, names,
                  folder / "ratios.png", ylabel="ratio removed", title="per-layer ratios")
    return [str(a), str(b)]
