"""``PruneConfig``: every option of structured channel pruning, frozen and validated."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from slimkit.core.config import check_ratio, parse_config
from slimkit.core.errors import ConfigError
from slimkit.core.modules import module_names
from slimkit.prune.importance import checked_importance, criterion_needs, importance_field

if TYPE_CHECKING:
    from slimkit.prune.structured import PruneReport


class Scope(str, Enum):
    LOCAL = "local"  # every group loses the same ratio of its channels
    GLOBAL = "global"  # one ranking across all groups (normalized scores)


class Normalize(str, Enum):
    NONE = "none"
    MEAN = "mean"
    MAX = "max"
    L2 = "l2"


class Aggregate(str, Enum):
    SUM = "sum"
    MEAN = "mean"
    MAX = "max"


# fp32 lanes of one SIMD register: channel counts at multiples of these fill whole vectors in the conv kernels
_CPU_LANES = {"AVX512": 16, "AVX2": 8, "SVE256": 8}


def auto_round_to(device: str) -> int:
    """Channel multiple the kernels of ``device`` like: CUDA 8 (tensor cores take fp16/bf16 tiles of 8), a CPU
    its SIMD width in fp32 lanes (16 with AVX-512, 8 with AVX2; 8 when unknown)."""
    if torch.device(device).type == "cuda":
        return 8
    return _CPU_LANES.get(torch.backends.cpu.get_cpu_capability(), 8)


#: The keyword shorthands that build a :class:`Budget`: field -> (kind, factor).
_BUDGET_FIELDS = {"target_macs": ("macs", False), "macs_reduction": ("macs", True),
                  "target_params": ("params", False), "params_reduction": ("params", True),
                  "target_latency_ms": ("latency_ms", False)}


@dataclass(frozen=True)
class Budget:
    """What a prune must reach: one settable value (``PruneConfig(budget=Budget("macs", 2.0, factor=True))``).

    The keywords ``ratio``, ``target_macs``, ``macs_reduction``, ``target_params``, ``params_reduction`` and
    ``target_latency_ms`` are shorthands that build it (:meth:`of`); ``PruneConfig.effective_budget`` is the one
    in force, whichever way it was given.

    Attributes:
        kind: ``ratio`` (of channels), ``macs``, ``params`` or ``latency_ms``.
        value: the target (a count, milliseconds or a ratio); with ``factor`` the reduction factor instead.
        factor: ``value`` divides today's amount (``macs_reduction=2``) rather than being the amount.
        option: the option as the user gave it, for messages (``"macs_reduction=2"``); derived when empty.
    """

    kind: Literal["ratio", "macs", "params", "latency_ms"]
    value: float
    factor: bool = False
    option: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("ratio", "macs", "params", "latency_ms"):
            raise ValueError(f"budget kind must be 'ratio', 'macs', 'params' or 'latency_ms', got {self.kind!r}")
        if self.factor and self.kind not in ("macs", "params"):
            raise ValueError(f"a {self.kind} budget cannot be a factor")
        if self.kind == "ratio":
            check_ratio("ratio", self.value)
        elif self.factor and self.value < 1.0:
            raise ValueError(f"{self.shorthand} must be >= 1 (a factor), got {self.value}")
        elif self.value <= 0:
            raise ValueError(f"{self.shorthand} must be positive, got {self.value}")
        if not self.option:
            object.__setattr__(self, "option", f"{self.shorthand}={self.value:g}")

    @property
    def shorthand(self) -> str:
        """The keyword that builds this budget (``macs_reduction``)."""
        if self.kind == "ratio":
            return "ratio"
        return next(name for name, spec in _BUDGET_FIELDS.items() if spec == (self.kind, self.factor))

    @classmethod
    def of(cls, **option: float) -> Budget:
        """The budget of one shorthand: ``Budget.of(macs_reduction=2)``, ``Budget.of(ratio=0.3)``."""
        if len(option) != 1:
            raise ValueError(f"give one budget shorthand, got {sorted(option) or 'none'}")
        ((name, value),) = option.items()
        if name == "ratio":
            return cls("ratio", float(value))
        if name not in _BUDGET_FIELDS:
            raise ValueError(f"unknown budget shorthand {name!r}; known: ratio, {', '.join(_BUDGET_FIELDS)}")
        kind, factor = _BUDGET_FIELDS[name]
        return cls(kind, float(value), factor)  # type: ignore[arg-type]


def one_budget(config: Any, shorthands: Iterable[str]) -> Budget | None:
    """The budget a config sets, for its ``__post_init__``: its ``budget`` field (a mapping becomes a
    :class:`Budget`) or the one of ``shorthands`` it gives (``macs_reduction``, ...); None when neither is set.

    Raises:
        ValueError: more than one is set (the message names them), or a value :class:`Budget` refuses.
    """
    if isinstance(config.budget, Mapping):
        object.__setattr__(config, "budget", Budget(**config.budget))
    names = list(shorthands)
    given = [name for name in names if getattr(config, name) is not None]
    if len(given) + (config.budget is not None) > 1:
        raise ValueError(f"give at most one of budget, {', '.join(names)}; got "
                         f"{', '.join((['budget'] if config.budget is not None else []) + given)}")
    if config.budget is not None:
        return config.budget
    return Budget.of(**{given[0]: getattr(config, given[0])}) if given else None


@dataclass(frozen=True)
class PruneConfig:
    """Options of :func:`slimkit.prune_channels` / :func:`slimkit.plan_pruning`.

    Attributes:
        ratio: fraction of channels to remove (per group for ``local``, overall for ``global``).
        importance: a criterion registered in ``slimkit.prune.importance.CRITERIA`` (docs/pruning.md lists
            them; ``@register_importance`` adds your own): its object (``Taylor(batches=8)``), its name
            (``"taylor"``) or, in a recipe, ``{name: taylor, batches: 8}``. A name is kept as given; a mapping
            becomes the object.
        scope: ``local`` or ``global`` ranking.
        normalize: per-group score normalization before a global ranking (none, mean, max, l2).
        aggregate: how the scores of a channel's coupled tensors combine (sum, mean, max).
        debias: score per weight element instead of per slice, so wide fan-in layers do not dominate.
        ignore: module names or globs whose tensors must not be sliced (groups touching them are skipped).
            ``plan_pruning``/``prune_channels`` also take module objects here and store their names; every entry
            must match a module of the model (a typo raises ConfigError naming the close matches).
        ratios: per-module overrides ``{"layer4.*": 0.2}``; matched against the group's producing modules.
        target_macs: prune (global ranking) until the MACs of the example input are at most this.
        macs_reduction: prune until MACs fall by this factor (2.0 = half the MACs).
        target_params: prune until the parameter count is at most this.
        params_reduction: prune until the parameter count falls by this factor.
        budget: what the prune must reach, as one :class:`Budget` (``Budget("macs", 2.0, factor=True)``; in a
            recipe ``budget: {kind: macs, value: 2, factor: true}``); the target fields above and ``ratio`` are its
            shorthands: give at most one of them besides ``ratio``. ``effective_budget`` is the one in force.
        allow_partial: when ``target_macs``/``macs_reduction``/``target_params`` cannot be met (nothing prunable,
            the per-group floors, or rounding steps too coarse to land within 3% past it), keep the closest plan
            and warn (``BudgetWarning``) instead of raising ConfigError.
        target_latency_ms: prune (global ranking) until the median latency measured on ``latency_device`` at
            ``latency_batch_size`` is at most this (each candidate is applied, timed and rolled back).
        latency_device: where ``target_latency_ms`` is measured ("cpu", "cuda", ...).
        latency_batch_size: batch size for ``target_latency_ms`` and ``latency_weight``.
        latency_weight: hardware-aware global ranking by ``importance / cost ** latency_weight``, from the
            per-layer latency measured on ``latency_device`` (0: off; 1: importance per unit of cost; 2: favour
            speed more). The cost is the time a channel's removal saves per unit of what is budgeted: per MAC
            under ``target_macs``/``macs_reduction``, per parameter under ``target_params``, per channel under
            ``ratio`` or ``target_latency_ms``. So a MACs budget is spent where it buys the most time. Speed-first:
            time varies across layers far more than normalized importance, so it decides the ranking; bound it
            per layer with ``max_group_ratio`` and fine-tune after (docs/pruning.md, "Hardware-aware pruning").
        attention: unit removed from ``nn.MultiheadAttention``: ``head_dims`` (the same dims in every head) or
            ``heads`` (whole heads; exact for a head without effect, and the kernels keep their head size).
        round_to: keep channel counts at multiples of this (8 for tensor cores / SIMD widths); ``"auto"``: what
            ``latency_device``'s kernels like (:func:`auto_round_to`: 16 on an AVX-512 CPU, 8 on AVX2 and CUDA).
        min_channels: never keep fewer channels than this in a group.
        max_group_ratio: never remove more than this fraction of one group (global/budget modes).
        allow_inexact: also prune channels whose removal is not function-preserving even at zero effect
            (dims normalized by LayerNorm, reduced over, or scaled by attention's default scale).
        verify: ``auto``/``always`` (the same): run the pruned model on the example inputs; it must run, keep its
            output shapes and keep finite outputs finite, else the groups that break it are found by bisection
            and left alone (``report.skipped`` names the failing module). ``never`` skips the check (one forward
            pass saved; a broken model is then possible).
        strict: raise GraphError when any channel is blocked for a reason other than being a model output.
        seed: for ``random`` importance and tie-breaking.
    """

    ratio: float = 0.5
    # Any for pydantic (the criterion classes are checked here, not by it); str | Importance in fact
    importance: Any = importance_field()
    scope: Scope = Scope.GLOBAL
    normalize: Normalize = Normalize.MEAN
    aggregate: Aggregate = Aggregate.MEAN
    debias: bool = False
    ignore: tuple[str, ...] = ()
    ratios: dict[str, float] = field(default_factory=dict)
    target_macs: float | None = None
    macs_reduction: float | None = None
    target_params: float | None = None
    params_reduction: float | None = None
    budget: Budget | None = field(default=None, metadata={"flag": False})
    allow_partial: bool = False
    target_latency_ms: float | None = None
    latency_device: str = "cpu"
    latency_batch_size: int = 1
    latency_weight: float = 0.0
    attention: Literal["head_dims", "heads"] = "head_dims"
    round_to: int | Literal["auto"] | None = None
    min_channels: int = 1
    max_group_ratio: float = 0.9
    allow_inexact: bool = True
    strict: bool = False
    verify: Literal["auto", "always", "never"] = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        check_ratio("ratio", self.ratio)
        check_ratio("max_group_ratio", self.max_group_ratio, allow_one=True)
        for name, value in self.ratios.items():
            check_ratio(f"ratios[{name!r}]", value)
        object.__setattr__(self, "importance", checked_importance(self.importance))
        object.__setattr__(self, "scope", Scope(self.scope))
        object.__setattr__(self, "normalize", Normalize(self.normalize))
        object.__setattr__(self, "aggregate", Aggregate(self.aggregate))
        object.__setattr__(self, "ignore", (self.ignore,) if isinstance(self.ignore, str) else tuple(self.ignore))
        for entry in self.ignore:
            if not isinstance(entry, str):
                raise ValueError(f"ignore holds module names or globs, got a {type(entry).__name__}; pass module "
                                 "objects as ignore=[...] to plan_pruning / prune_channels, which store their names")
        if self.attention not in ("head_dims", "heads"):
            raise ValueError(f"attention must be 'head_dims' or 'heads', got {self.attention!r}")
        if self.round_to == "auto":
            object.__setattr__(self, "round_to", auto_round_to(self.latency_device))
        if self.round_to is not None and (not isinstance(self.round_to, int) or self.round_to < 1):
            raise ValueError(f"round_to must be a whole number >= 1 or 'auto', got {self.round_to!r}")
        if self.min_channels < 1:
            raise ValueError(f"min_channels must be >= 1, got {self.min_channels}")
        if self.latency_weight < 0:
            raise ValueError(f"latency_weight must be >= 0, got {self.latency_weight}")
        if self.latency_batch_size < 1:
            raise ValueError(f"latency_batch_size must be >= 1, got {self.latency_batch_size}")
        one_budget(self, _BUDGET_FIELDS)  # one at most; the shorthand's value passes Budget's own checks

    @property
    def effective_budget(self) -> Budget:
        """The one budget this config sets: ``budget``, else the one shorthand given, else ``Budget("ratio",
        ratio)``. What the engine branches on."""
        return one_budget(self, _BUDGET_FIELDS) or Budget.of(ratio=self.ratio)


def traced_on_batch(config: PruneConfig, batch: int) -> PruneConfig:
    """``config`` for tracing ``batch`` samples when its budget was set for one: MACs are counted on the traced
    inputs, so an absolute ``target_macs`` scales with the batch. Factors, parameters, ratios and latency do not."""
    budget = config.effective_budget
    if batch <= 1 or budget.kind != "macs" or budget.factor:
        return config
    shorthands = {name: None for name in _BUDGET_FIELDS}
    return replace(config, **shorthands, budget=Budget("macs", budget.value * batch, option=budget.option))


def trace_setup(example_inputs: tuple, config: PruneConfig, data: list | None) -> tuple[tuple, PruneConfig, int]:
    """What to trace, the config to trace it with, and its batch size. A criterion that reads activations
    (``apoz``) is traced on the first ``(inputs, targets)`` batch of ``data``, whose activity it reads, with the
    budget of :func:`traced_on_batch`; anything else on ``example_inputs`` as given (batch 1 for the CLI and
    recipes). Pair with :func:`per_sample_report` after the cut."""
    if not data or "activations" not in criterion_needs(config.importance):
        return example_inputs, config, 1
    batch = data[0][0]
    return (batch,), traced_on_batch(config, len(batch)), len(batch)


def per_sample_report(report: PruneReport, batch: int) -> PruneReport:
    """``report`` of a cut traced on ``batch`` samples, with its MACs per sample (in place)."""
    if batch > 1:
        report.macs_before, report.macs_after = report.macs_before // batch, report.macs_after // batch
    return report


def resolve_config(model: nn.Module, config: PruneConfig | dict | None, options: dict[str, Any]) -> PruneConfig:
    """The :class:`PruneConfig` of a call on ``model``: ``config`` (a PruneConfig, a dict or None) with keyword
    ``options`` over it. Module objects in ``ignore`` become their names in ``model``; every ``ignore`` entry must
    match a module (ConfigError naming the close matches otherwise)."""
    if "ignore" in options:
        options = {**options, "ignore": module_names(model, options["ignore"], field="ignore")}
    if config is None or isinstance(config, dict):
        config = dict(config or {})
        if "ignore" in config:
            config["ignore"] = module_names(model, config["ignore"], field="ignore")
        return _check_ratio_keys(model, parse_config(PruneConfig, {**config, **options}))
    if options:
        from dataclasses import replace

        try:
            config = replace(config, **options)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"PruneConfig: {err}") from None
    module_names(model, config.ignore, field="ignore")
    return _check_ratio_keys(model, config)


def _check_ratio_keys(model: nn.Module, config: PruneConfig) -> PruneConfig:
    """A ``ratios`` key that matches no module is a typo that would silently prune with the default ratio."""
    module_names(model, tuple(config.ratios), field="ratios")
    return config
