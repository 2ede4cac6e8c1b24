"""Importance criteria: small frozen config objects scoring every channel of a graph at once, in one registry.

A criterion is an :class:`Importance` subclass registered once under a name (``@register_importance("taylor",
needs=("batches",))``); its fields are its options (``Taylor(batches=8)``) and ``scores(graph, ctx)`` returns one
score per channel (higher = keep) and a mask of the channels it could score (others fall back to L1). Scores of a
channel's coupled tensors are aggregated (sum, mean, max), then normalized per group so a global ranking compares like
with like. Everywhere a criterion is taken it may be spelled as the object, its name (``"taylor"``) or a mapping
(``{"name": "taylor", "batches": 8}``, a recipe's spelling): :func:`resolve_importance` makes the object. A plain
function ``fn(graph, ctx) -> (scores, valid)`` may also be registered; it becomes an option-less criterion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch

from slimkit.core.config import parse_config
from slimkit.core.errors import ConfigError
from slimkit.core.registry import Registry
from slimkit.graph.groups import ChannelGraph

Scores = tuple[torch.Tensor, torch.Tensor]
ScoreFn = Callable[[ChannelGraph, "ImportanceContext"], Scores]


@dataclass
class ImportanceContext:
    """What a criterion may use beyond the weights: options, example inputs, data batches and a loss."""

    aggregate: str = "mean"
    debias: bool = False
    seed: int = 0
    example_inputs: tuple = ()
    data: Iterable[Any] | None = None
    loss_fn: Callable[..., torch.Tensor] | None = None


NEEDS = frozenset({"batches", "activations"})


@dataclass(frozen=True)
class Importance:
    """Base of the criterion configs: ``name`` and ``needs`` are set by :func:`register_importance`.

    ``needs`` is the data read beyond the weights, so callers (the recipe's prune stage, the CLI) collect it without
    knowing the criterion: ``"batches"``: ``(inputs, targets)`` batches in ``ctx.data`` (gradients);
    ``"activations"``: the graph traced on a real batch with per-channel activity recorded (``graph.activity``).
    A criterion that reads batches may have a ``batches`` field: how many the caller should hand it.
    """

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()

    def scores(self, graph: ChannelGraph, ctx: ImportanceContext) -> Scores:
        raise NotImplementedError

    def __call__(self, graph: ChannelGraph, ctx: ImportanceContext) -> Scores:
        return self.scores(graph, ctx)

    def __config_dict__(self) -> dict[str, Any]:
        """The recipe spelling: ``{"name": "taylor", "batches": 8}`` (see ``core.config.config_to_dict``)."""
        return {"name": self.name, **{f.name: getattr(self, f.name) for f in fields(self)}}


CRITERIA: Registry[type[Importance]] = Registry("importance", discover="slimkit.prune.criteria")


def register_importance(name: str, *, needs: Iterable[str] = ()) -> Callable[[Any], Any]:
    """Register an :class:`Importance` subclass (or a function ``fn(graph, ctx) -> (scores, valid)``) as ``name``.

    Args:
        needs: the data the criterion reads beyond the weights (see :class:`Importance`).
    """
    wanted = frozenset(needs)
    if wanted - NEEDS:
        raise ConfigError(f"importance {name!r}: unknown needs {sorted(wanted - NEEDS)}; known: {sorted(NEEDS)}")

    def add(obj: Any) -> Any:
        if isinstance(obj, type) and issubclass(obj, Importance):
            cls = obj
        else:  # a plain function: an option-less criterion calling it
            fn = obj
            cls = dataclass(frozen=True)(type(f"{name}_importance", (Importance,), {
                "scores": lambda self, graph, ctx: fn(graph, ctx), "__doc__": fn.__doc__,
                "__module__": getattr(fn, "__module__", __name__)}))
            fn.needs = wanted  # type: ignore[attr-defined]
        cls.name, cls.needs = name, wanted
        CRITERIA.add(name, cls)
        return obj

    return add


def resolve_importance(spec: str | Mapping[str, Any] | Importance, *, where: str = "importance") -> Importance:
    """The criterion object of ``spec``: an :class:`Importance`, a registered name or ``{"name": ..., **options}``.

    Raises:
        ConfigError: naming ``where`` for an unknown name or a bad option.
    """
    if isinstance(spec, Importance):
        return spec
    if isinstance(spec, str):
        try:
            return CRITERIA.get(spec)()
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
    if isinstance(spec, Mapping):
        options = dict(spec)
        if not isinstance(options.get("name"), str):
            raise ConfigError(f"{where}: a mapping needs the criterion's name, e.g. {{name: taylor, batches: 8}}")
        try:
            cls = CRITERIA.get(options.pop("name"))
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        return parse_config(cls, options, where=where)
    raise ConfigError(f"{where}: expected a criterion name, a mapping or an Importance, got {type(spec).__name__}")


def importance_field(default: str = "l1") -> Any:
    """The ``importance`` field of a config: a criterion's name, mapping or object (see :func:`checked_importance`).

    Its metadata names ``CRITERIA``, so the command line lists the registered criteria, checks the name before any
    work and offers ``--importance-opt KEY=VALUE`` for the criterion's options (cli/from_config.py).
    """
    return field(default=default, metadata={"registry": "slimkit.prune.importance:CRITERIA"})


def checked_importance(value: Any, *, data_free: bool = False) -> str | Importance:
    """What a config's ``importance`` field keeps of ``value``: a name or an :class:`Importance` as given, a mapping
    resolved to its object. For ``__post_init__``: raises ValueError starting ``importance:``.

    A name must be registered when the config is built, so an unknown one fails there, listing the known names,
    not when the plan resolves it.

    Args:
        data_free: the caller hands the criterion no data: a criterion that reads some (taylor, apoz) is an error.
    """
    if isinstance(value, Importance) and not data_free:
        return value
    try:
        criterion = resolve_importance(value)
    except ConfigError as err:
        raise ValueError(str(err)) from None
    if data_free and criterion.needs:
        weight_only = ", ".join(name for name, cls in CRITERIA.items() if not cls.needs)
        raise ValueError(f"importance: {criterion.name} reads data ({', '.join(sorted(criterion.needs))}), which "
                         f"this method does not collect; choose a weight criterion ({weight_only})")
    return value if isinstance(value, (str, Importance)) else criterion


def criterion_needs(spec: str | Mapping[str, Any] | Importance) -> frozenset[str]:
    """What a criterion reads beyond the weights (see :class:`Importance`); ConfigError if unknown."""
    return resolve_importance(spec).needs


def criterion_batches(spec: str | Mapping[str, Any] | Importance, default: int) -> int:
    """How many data batches the criterion asks for (its ``batches`` option), ``default`` when it does not say."""
    batches = getattr(resolve_importance(spec), "batches", None)
    return default if batches is None else batches


def per_slice_scores(graph: ChannelGraph, values: Callable[[torch.Tensor, int], torch.Tensor | None],
               ctx: ImportanceContext, roles: tuple[str, ...] = ("out", "in", "norm", "aux"),
               params_only: bool = True) -> Scores:
    """Aggregate ``values(tensor, dim) -> per-position score`` over every occurrence into per-channel scores."""
    nc = graph.num_channels
    all_comps: list[torch.Tensor] = []
    all_values: list[torch.Tensor] = []
    for o in graph.occurrences:
        if o.role not in roles:
            continue
        is_param = any(p for *_, p in graph.locations[o.tensor])
        if params_only and not is_param:
            continue
        t = graph.tensors[o.tensor]
        with torch.no_grad():
            v = values(t, o.dim)
        if v is None:
            continue
        v = v.double().reshape(-1)
        if ctx.debias:
            v = v / max(t.numel() // max(t.shape[o.dim], 1), 1)
        all_comps.append(graph.comp[o.ids])
        all_values.append(v)
    # one scatter per statistic over every occurrence at once (hundreds of tiny scatters cost more than the math)
    comps = torch.cat(all_comps) if all_comps else torch.zeros(0, dtype=torch.long)
    v = torch.cat(all_values) if all_values else torch.zeros(0, dtype=torch.float64)
    total = torch.zeros(nc, dtype=torch.float64).index_add_(0, comps, v)
    count = torch.bincount(comps, minlength=nc).double()
    best = torch.zeros(nc, dtype=torch.float64).scatter_reduce_(0, comps, v, reduce="amax")
    valid = count > 0
    if ctx.aggregate == "sum":
        scores = total
    elif ctx.aggregate == "max":
        scores = best
    else:
        scores = total / count.clamp_min(1)
    return scores.float(), valid


def reduce_except(t: torch.Tensor, dim: int, fn: Callable[[torch.Tensor, tuple[int, ...]], torch.Tensor]) -> torch.Tensor:
    other = tuple(d for d in range(t.ndim) if d != dim)
    return fn(t.float(), other) if other else fn(t.float().unsqueeze(1), (1,))


def slice_norms(order: int) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """Per-slice L1/L2 norms. For weights, ``|W|`` (or ``W**2``) is reduced once to an (out, in) matrix whose
    row and column sums come from two matrix-vector products: one pass over each tensor however it is sliced."""
    cache: dict[int, torch.Tensor] = {}

    def finish(v: torch.Tensor) -> torch.Tensor:
        return v if order == 1 else v.sqrt()

    def values(t: torch.Tensor, d: int) -> torch.Tensor:
        x = t if t.is_floating_point() else t.float()
        if x.ndim == 1:
            return x.abs()
        if x.ndim > 2 and d >= 2:
            other = tuple(e for e in range(x.ndim) if e != d)
            return finish((x.abs() if order == 1 else x.square()).sum(other))
        if id(t) not in cache:
            a = (x.abs() if order == 1 else x.square()).reshape(x.shape[0], x.shape[1], -1)
            cache[id(t)] = a.sum(-1) if a.shape[-1] > 1 else a.squeeze(-1)
        m = cache[id(t)]
        if d == 0:
            return finish(m @ torch.ones(m.shape[1], dtype=m.dtype, device=m.device))
        return finish(torch.ones(m.shape[0], dtype=m.dtype, device=m.device) @ m)

    return values


@register_importance("l1")
@dataclass(frozen=True)
class L1(Importance):
    """Sum of absolute weights of every slice the channel removes (Li et al., 2017)."""

    def scores(self, graph: ChannelGraph, ctx: ImportanceContext) -> Scores:
        return per_slice_scores(graph, slice_norms(1), ctx)


@register_importance("l2")
@dataclass(frozen=True)
class L2(Importance):
    """Euclidean norm of every slice the channel removes."""

    def scores(self, graph: ChannelGraph, ctx: ImportanceContext) -> Scores:
        return per_slice_scores(graph, slice_norms(2), ctx)


@register_importance("fpgm")
@dataclass(frozen=True)
class FPGM(Importance):
    """Filter pruning via geometric median (He et al., 2019): filters near the others' median are redundant.

    Score of a producer filter = sum of its distances to the other filters of the same layer.
    """

    def scores(self, graph: ChannelGraph, ctx: ImportanceContext) -> Scores:
        return _fpgm(graph, ctx)


def _fpgm(graph: ChannelGraph, ctx: ImportanceContext) -> Scores:
    def dist(t: torch.Tensor, d: int) -> torch.Tensor | None:
        if t.ndim < 2:
            return None
        rows = t.float().movedim(d, 0).reshape(t.shape[d], -1)
        return torch.cdist(rows, rows).sum(1)

    return per_slice_scores(graph, dist, ctx, roles=("out",))


@register_importance("bn_scale")
@dataclass(frozen=True)
class BNScale(Importance):
    """|gamma| of the normalization layers (network slimming, Liu et al., 2017); other groups fall back to L1."""

    def scores(self, graph: ChannelGraph, ctx: ImportanceContext) -> Scores:
        return per_slice_scores(graph, lambda t, d: t.float().abs() if t.ndim == 1 else None, ctx, roles=("norm",))


@register_importance("random")
@dataclass(frozen=True)
class Random(Importance):
    """Uniform random scores (a baseline that any criterion should beat)."""

    def scores(self, graph: ChannelGraph, ctx: ImportanceContext) -> Scores:
        gen = torch.Generator().manual_seed(ctx.seed)
        return torch.rand(graph.num_channels, generator=gen), torch.ones(graph.num_channels, dtype=torch.bool)


def channel_scores(graph: ChannelGraph, importance: str | Mapping[str, Any] | Importance,
                   ctx: ImportanceContext) -> torch.Tensor:
    """Scores of every channel under a criterion (its object, name or mapping; L1 where it has nothing to say)."""
    scores, valid = resolve_importance(importance).scores(graph, ctx)
    if not bool(valid.all()):
        fallback, _ = L1().scores(graph, ctx)
        scores = torch.where(valid, scores, fallback)
    return scores


def normalize_scores(scores: torch.Tensor, member: torch.Tensor, num_groups: int, how: str) -> torch.Tensor:
    """Divide each channel's score by its group's mean / max / L2 norm (``member``: group per channel, -1 none)."""
    if how == "none":
        return scores
    sel = member >= 0
    g, s = member[sel], scores[sel].double()
    if how == "mean":
        ref = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, g, s)
        ref /= torch.bincount(g, minlength=num_groups).clamp_min(1)
    elif how == "max":
        ref = torch.zeros(num_groups, dtype=torch.float64).scatter_reduce_(0, g, s, reduce="amax")
    else:
        ref = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, g, s * s).sqrt()
    out = scores.clone()
    out[sel] = (s / ref[g].clamp_min(1e-12)).float()
    return out
