"""Unstructured magnitude pruning, per layer or global, as exact keep-masks on weights.

Per layer (``scope="layer"``) each weight loses the fraction ``sparsity`` of its entries with the lowest score;
global (``scope="global"``) ranks all prunable weights together with one ``kthvalue`` over their concatenated
scores, so layers with many small weights lose more (Han et al. 2015, "Learning both Weights and Connections").
Counts are exact: ``round(sparsity * numel)`` entries are pruned, ties at the threshold broken by position.
Weights pruned earlier rank below every live weight, so raising the sparsity only ever adds pruned entries.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated

import annotated_types
import torch
from torch import nn

from slimkit.core.config import check_ratio, parse_config
from slimkit.core.errors import ConfigError
from slimkit.core.modules import FilterFn
from slimkit.core.registry import Registry
from slimkit.core.transaction import transaction
from slimkit.prune.unstructured.masks import PRUNABLE_TYPES, get_masks, prunable_weights, set_mask
from slimkit.prune.unstructured.report import SparsityReport, sparsity_report

#: ``score(weight) -> tensor of weight's shape``; the lowest scores are pruned first.
WeightScore = Callable[[torch.Tensor], torch.Tensor]
WEIGHT_SCORES: Registry[WeightScore] = Registry("weight score")


def register_weight_score(name: str) -> Callable[[WeightScore], WeightScore]:
    """Decorator adding an unstructured pruning criterion ``score(weight) -> scores`` (lowest pruned first)."""
    return WEIGHT_SCORES.register(name)


@register_weight_score("magnitude")
def magnitude_score(weight: torch.Tensor) -> torch.Tensor:
    """|w|: the criterion of Han et al. 2015 and of the lottery-ticket papers."""
    return weight.detach().abs()


#: A sparsity in [0, 1); the bounds also make recipe validation name the field ("sparsity: should be less than 1").
Ratio = Annotated[float, annotated_types.Ge(0.0), annotated_types.Lt(1.0)]


class Scope(str, Enum):
    """How the sparsity target is spread: over all prunable weights together, or over each layer alike."""

    GLOBAL = "global"
    LAYER = "layer"

    @classmethod
    def _missing_(cls, value: object) -> Scope | None:
        return cls.LAYER if value == "local" else None  # the glossary's word for per-group scope


@dataclass(frozen=True)
class WeightPruneConfig:
    """Options of :func:`prune_weights` (also the recipe stage's pruning options).

    Attributes:
        sparsity: fraction of prunable weights to zero, in [0, 1).
        scope: ``global`` ranks all layers together; ``layer`` prunes each layer to ``sparsity``.
        criterion: a registered weight score (``magnitude``).
        per_layer: ``{module fqn or glob: sparsity}``; those layers are pruned alone to their own sparsity.
        ignore: module fqns or globs left dense (e.g. the classifier).
    """

    sparsity: Ratio = 0.9
    scope: Scope = Scope.GLOBAL
    criterion: str = field(default="magnitude",
                           metadata={"registry": "slimkit.prune.unstructured.magnitude:WEIGHT_SCORES"})
    per_layer: dict[str, Ratio] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.sparsity, (int, float)) or isinstance(self.sparsity, bool):
            raise ConfigError(f"sparsity: expected a number in [0, 1), got {self.sparsity!r}")
        _check("sparsity", self.sparsity)
        object.__setattr__(self, "scope", _scope(self.scope))
        if self.criterion not in WEIGHT_SCORES:
            raise ConfigError(
                f"criterion: unknown weight score {self.criterion!r}; choose one of: {', '.join(WEIGHT_SCORES)}"
            )
        for pattern, value in dict(self.per_layer).items():
            _check(f"per_layer[{pattern!r}]", value)
        object.__setattr__(self, "per_layer", dict(self.per_layer))
        object.__setattr__(self, "ignore", (self.ignore,) if isinstance(self.ignore, str) else tuple(self.ignore))


def _check(name: str, value: float) -> None:
    try:
        check_ratio(name, float(value))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name}: {err}".replace(f"{name} must", "must")) from None
    if math.isnan(float(value)):
        raise ConfigError(f"{name}: must be in [0, 1), got nan")


def _scope(value: object) -> Scope:
    try:
        return Scope(value)
    except ValueError:
        raise ConfigError(f"scope: expected 'global' or 'layer' (alias 'local'), got {value!r}") from None


def lowest_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool tensor marking exactly ``k`` entries of 1-D ``scores`` with the lowest values (ties: first by position)."""
    n = scores.numel()
    pruned = torch.zeros(n, dtype=torch.bool, device=scores.device)
    if k <= 0:
        return pruned
    if k >= n:
        return pruned.fill_(True)
    threshold = scores.kthvalue(k).values
    pruned = scores < threshold
    need = k - int(pruned.sum())
    ties = torch.nonzero(scores == threshold).squeeze(1)[:need]  # (need,) positions tied at the threshold
    pruned[ties] = True
    return pruned


def _layer_sparsity(fqn: str, per_layer: Mapping[str, float]) -> float | None:
    for pattern, value in per_layer.items():
        if fqn == pattern or fnmatch.fnmatchcase(fqn, pattern):
            return float(value)
    return None


def compute_masks(
    model: nn.Module,
    config: WeightPruneConfig,
    *,
    filter_fn: FilterFn | None = None,
    types: tuple[type[nn.Module], ...] = PRUNABLE_TYPES,
) -> dict[tuple[str, nn.Module], torch.Tensor]:
    """Keep-masks ``{(module fqn, module): BoolTensor}`` reaching ``config``; reads the model, changes nothing."""
    layers = prunable_weights(model, filter_fn=filter_fn, ignore=config.ignore, types=types)
    unmatched = [p for p in config.per_layer if not any(_layer_sparsity(f, {p: 0.0}) is not None for f, _, _ in layers)]
    if unmatched:
        raise ConfigError(
            f"per_layer[{unmatched[0]!r}]: matches no prunable layer; prunable layers: "
            f"{', '.join(f for f, _, _ in layers) or '(none)'}"
        )
    score_fn = WEIGHT_SCORES.get(config.criterion)
    old = get_masks(model)
    scores: list[torch.Tensor] = []
    for fqn, _module, weight in layers:
        score = score_fn(weight).float().flatten()
        mask = old.get(f"{fqn}.weight" if fqn else "weight")
        if mask is not None:  # pruned earlier: rank below every live weight
            score = torch.where(mask.flatten(), score, torch.full_like(score, -1.0))
        scores.append(score)

    masks: dict[tuple[str, nn.Module], torch.Tensor] = {}
    pool: list[int] = []
    for i, (fqn, module, weight) in enumerate(layers):
        own = _layer_sparsity(fqn, config.per_layer)
        if own is None and config.scope is Scope.GLOBAL:
            pool.append(i)
            continue
        target = config.sparsity if own is None else own
        pruned = lowest_k(scores[i], round(target * weight.numel()))
        masks[(fqn, module)] = pruned.logical_not().view_as(weight)
    if pool:
        flat = torch.cat([scores[i].to(scores[pool[0]].device) for i in pool])  # (sum of numel,)
        pruned = lowest_k(flat, round(config.sparsity * flat.numel()))
        offset = 0
        for i in pool:
            fqn, module, weight = layers[i]
            part = pruned[offset : offset + weight.numel()]
            offset += weight.numel()
            masks[(fqn, module)] = part.logical_not().view_as(weight).to(weight.device)
    return {key: masks[key] for key in ((f, m) for f, m, _ in layers)}


def apply_pruning(
    model: nn.Module,
    config: WeightPruneConfig,
    *,
    filter_fn: FilterFn | None = None,
    types: tuple[type[nn.Module], ...] = PRUNABLE_TYPES,
) -> None:
    """Compute and attach masks without a transaction (for hooks pruning every few steps)."""
    for (fqn, module), mask in compute_masks(model, config, filter_fn=filter_fn, types=types).items():
        set_mask(module, "weight", mask, fqn=fqn)


def prune_weights(
    model: nn.Module,
    config: WeightPruneConfig | Mapping | None = None,
    *,
    sparsity: float | None = None,
    scope: str | Scope | None = None,
    criterion: str | None = None,
    per_layer: Mapping[str, float] | None = None,
    ignore: Iterable[str] | None = None,
    filter_fn: FilterFn | None = None,
    types: tuple[type[nn.Module], ...] = PRUNABLE_TYPES,
) -> SparsityReport:
    """Zero the lowest-magnitude weights of ``model`` in place and keep them zero with masks.

    Args:
        model: any ``nn.Module``; the weights of its Linear/Conv layers (``types``) are pruned.
        config: a :class:`WeightPruneConfig` or a dict of its fields; keyword options override it.
        sparsity: fraction of prunable weights to zero, in [0, 1) (default 0.9).
        scope: ``"global"`` (one ranking over all layers) or ``"layer"`` (each layer to ``sparsity``).
        criterion: registered weight score, ``"magnitude"`` by default.
        per_layer: ``{module fqn or glob: sparsity}`` for layers pruned to their own sparsity.
        ignore: module fqns or globs to leave dense.
        filter_fn: ``filter_fn(module, fqn) -> bool`` choosing the layers to prune.
        types: the layer types whose ``weight`` is prunable.

    Returns:
        The :class:`SparsityReport` after pruning (per layer and overall).

    Raises:
        ConfigError: naming the bad field (e.g. ``sparsity: must be in [0, 1), got 1.5``); the model is untouched.

    Example:
        >>> report = prune_weights(model, sparsity=0.9, scope="global", ignore=["fc3"])
        >>> print(report.table())
    """
    base = parse_config(WeightPruneConfig, config, where="prune_weights") if config is not None else None
    options = {} if base is None else {
        "sparsity": base.sparsity, "scope": base.scope, "criterion": base.criterion,
        "per_layer": dict(base.per_layer), "ignore": base.ignore,
    }
    for key, value in (("sparsity", sparsity), ("scope", scope), ("criterion", criterion),
                       ("per_layer", per_layer), ("ignore", ignore)):
        if value is not None:
            options[key] = value
    cfg = WeightPruneConfig(**options)
    with transaction(model):
        apply_pruning(model, cfg, filter_fn=filter_fn, types=types)
    return sparsity_report(model, filter_fn=filter_fn, ignore=cfg.ignore, types=types)
