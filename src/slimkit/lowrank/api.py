"""``decompose``: replace Linear and Conv2d layers by low-rank factor chains, all or nothing, with a report.

Example:
    >>> report = decompose(model, (torch.randn(1, 1, 28, 28),), method="tucker", energy=0.9)
    >>> print(report.table())
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from slimkit.core.config import parse_config
from slimkit.core.errors import ConfigError, GraphError
from slimkit.core.forward import training_mode
from slimkit.core.modules import FilterFn, count_params, get_submodule, iter_modules, label, set_submodule
from slimkit.core.transaction import transaction
from slimkit.lowrank._base import METHODS, Factorized, Method
from slimkit.lowrank._measure import LayerShape, macs_under, measure_layers
from slimkit.lowrank.ranks import BudgetItem, allocate_ranks, energy_rank

MethodName = Literal["svd", "tucker", "cp", "auto"]
PLAN_ATTR = "slimkit_lowrank"  # {fqn: {"method", "ranks"}} on a decomposed model, for checkpoints


@dataclass(frozen=True)
class DecomposeConfig:
    """How to decompose. Give at most one of ``rank``, ``energy``, ``target_params``, ``target_macs``;
    with none, ranks come from EVBMF (Kim et al. 2015).

    Attributes:
        method: ``svd`` (Linear and Conv2d as matrices), ``tucker`` (Tucker-2, kxk convs), ``cp`` (kxk convs), or
            ``auto`` (Linear and 1x1 conv: svd; kxk conv: tucker).
        rank: a fixed rank per layer (both Tucker modes), clipped to what the layer allows; or ``"vbmf"``.
        energy: kept fraction in (0, 1] of the squared singular values, per layer (per mode for Tucker).
        target_params: the whole model's parameter count afterwards: a fraction in (0, 1) of today's count, or an
            absolute count (>= 1); ranks are allocated globally by energy per parameter.
        target_macs: the same for multiply-accumulates (Linear and Conv2d, per sample).
        ignore: fqns or globs of layers to leave alone (``classifier.*``).
    """

    method: MethodName = "auto"
    rank: int | Literal["vbmf"] | None = None
    energy: float | None = None
    target_params: float | None = None
    target_macs: float | None = None
    ignore: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        given = [n for n in ("rank", "energy", "target_params", "target_macs") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of rank, energy, target_params, target_macs (got {', '.join(given)})")
        if self.method != "auto" and self.method not in METHODS:
            raise ValueError(f"method must be auto or one of {', '.join(METHODS.names())}, got {self.method!r}")
        if isinstance(self.rank, int) and not isinstance(self.rank, bool) and self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        if self.energy is not None and not 0.0 < self.energy <= 1.0:
            raise ValueError(f"energy must be in (0, 1], got {self.energy}")
        for name in ("target_params", "target_macs"):
            value = getattr(self, name)
            if value is not None and (value <= 0 or (1.0 <= value and value != int(value))):
                raise ValueError(f"{name} must be a fraction in (0, 1) or a whole count >= 1, got {value}")


@dataclass
class LayerDecomposition:
    """One targeted layer: what was done (or why not) and what it cost before and after."""

    name: str
    type: str
    method: str | None = None
    ranks: tuple[int, ...] | None = None
    params_before: int = 0
    params_after: int = 0
    macs_before: int = 0
    macs_after: int = 0
    weight_error: float | None = None  # ||W - W_r||_F / ||W||_F
    skipped: str | None = None

    @property
    def decomposed(self) -> bool:
        return self.skipped is None


@dataclass
class DecomposeReport:
    """Per-layer results plus whole-model params/MACs (MACs of Linear and Conv2d layers, per sample)."""

    layers: list[LayerDecomposition] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    macs_before: int = 0
    macs_after: int = 0
    plan: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def decomposed(self) -> list[LayerDecomposition]:
        return [layer for layer in self.layers if layer.decomposed]

    @property
    def skipped(self) -> list[LayerDecomposition]:
        return [layer for layer in self.layers if not layer.decomposed]

    def _ratio(self, before: str, after: str) -> float:
        b = sum(getattr(x, before) for x in self.decomposed)
        a = sum(getattr(x, after) for x in self.decomposed)
        return b / a if a else 1.0

    @property
    def layer_params_reduction(self) -> float:
        """Params of the decomposed layers before / after (1.0 when none was decomposed)."""
        return self._ratio("params_before", "params_after")

    @property
    def layer_macs_reduction(self) -> float:
        """MACs of the decomposed layers before / after."""
        return self._ratio("macs_before", "macs_after")

    def table(self) -> str:
        head = f"{'layer':<28} {'method':<7} {'ranks':<11} {'params':>19} {'MACs':>23} {'error':>7}"
        rows = [head, "-" * len(head)]
        for x in self.layers:
            if x.skipped:
                rows.append(f"{x.name:<28} skipped: {x.skipped}")
                continue
            ranks = "x".join(map(str, x.ranks or ()))
            rows.append(
                f"{x.name:<28} {x.method:<7} {ranks:<11} {x.params_before:>9,}->{x.params_after:<9,}"
                f" {x.macs_before:>11,}->{x.macs_after:<11,} {x.weight_error:>7.4f}"
            )
        rows.append(
            f"model: params {self.params_before:,} -> {self.params_after:,}, MACs {self.macs_before:,} -> "
            f"{self.macs_after:,}; decomposed layers: params x{self.layer_params_reduction:.2f}, "
            f"MACs x{self.layer_macs_reduction:.2f}"
        )
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["layer_params_reduction"] = self.layer_params_reduction
        out["layer_macs_reduction"] = self.layer_macs_reduction
        return out


def _method_for(module: nn.Module, name: str) -> Method:
    if name != "auto":
        return METHODS.get(name)
    if isinstance(module, nn.Conv2d) and module.kernel_size != (1, 1):
        return METHODS.get("tucker")
    return METHODS.get("svd")


def _fit_ranks(method: Method, module: nn.Module, ranks: Iterable[int]) -> tuple[int, ...]:
    return tuple(max(1, min(int(r), m)) for r, m in zip(ranks, method.max_ranks(module)))


def _budget(value: float, current: int) -> int:
    return int(round(value * current)) if value < 1 else int(value)


def decompose(
    model: nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    config: DecomposeConfig | dict[str, Any] | None = None,
    *,
    filter_fn: FilterFn | None = None,
    **options: Any,
) -> DecomposeReport:
    """Replace Linear/Conv2d layers of ``model`` in place by low-rank factor chains.

    Layers a method cannot factor, or whose factorization would not save parameters at the chosen rank, are left
    as they are and listed in the report with the reason. The model is changed all or nothing.

    Args:
        model: the model to decompose (changed in place).
        example_inputs: a batch (tensor or tuple of tensors) used to measure spatial sizes and MACs.
        config: a :class:`DecomposeConfig` (or its dict); or pass its fields as keyword options.
        filter_fn: ``filter_fn(module, fqn) -> bool`` choosing the layers to consider.
        **options: :class:`DecomposeConfig` fields (``method``, ``rank``, ``energy``, ``target_params``, ...).

    Returns:
        a :class:`DecomposeReport`.

    Raises:
        ConfigError: bad options, or a budget below rank 1 everywhere.
        GraphError: when the example inputs do not run through the model.
    """
    if config is not None and options:
        raise ConfigError("decompose: pass either a config or keyword options, not both")
    config = parse_config(DecomposeConfig, config if config is not None else options, where="decompose")
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    try:
        before = measure_layers(model, inputs)
    except Exception as err:  # noqa: BLE001 - any failure of the user's forward
        raise GraphError(f"decompose: the example inputs do not run through {type(model).__name__}: {err}") from err
    report = DecomposeReport(params_before=count_params(model), macs_before=sum(s.macs for s in before.values()))

    inside = [fqn for fqn, m in model.named_modules() if isinstance(m, Factorized)]
    chosen: list[tuple[str, nn.Module, Method, LayerShape]] = []
    for fqn, module in iter_modules(model, (nn.Linear, nn.Conv2d), filter_fn=filter_fn, ignore=config.ignore):
        entry = LayerDecomposition(fqn, type(module).__name__, params_before=count_params(module))
        report.layers.append(entry)
        method = _method_for(module, config.method)
        entry.method = method.name
        if any(fqn.startswith(prefix + ".") for prefix in inside):
            entry.skipped = "already a factor of a decomposed layer"
        elif fqn not in before:
            entry.skipped = "not reached by the example inputs"
        else:
            entry.macs_before = before[fqn].macs
            entry.skipped = method.skip_reason(module)
        if entry.skipped is None:
            chosen.append((fqn, module, method, before[fqn]))

    ranks = _choose_ranks(config, chosen, report)
    entries = {e.name: e for e in report.layers}
    todo = []
    for (fqn, module, method, shape), r in zip(chosen, ranks):
        entry = entries[fqn]
        if r is None:
            entry.skipped = "kept dense: under the global budget it would need as much as the dense layer"
            continue
        params_after, _ = method.cost(module, r, shape.geometry)
        if params_after >= entry.params_before:
            entry.skipped = (
                f"ranks {'x'.join(map(str, r))} need {params_after:,} params, not fewer than the layer's "
                f"{entry.params_before:,}"
            )
            continue
        entry.ranks = r
        todo.append((fqn, module, method, r))

    with transaction(model), torch.no_grad():
        for fqn, module, method, r in todo:
            factors = method.build(module, r)
            approx = method.fill(module, factors)
            factors.train(module.training)
            for p_new in factors.parameters():
                p_new.requires_grad_(module.weight.requires_grad)
            weight = module.weight.detach()
            entry = entries[fqn]
            entry.weight_error = float((weight - approx).norm() / weight.norm().clamp_min(1e-30))
            entry.params_after = count_params(factors)
            set_submodule(model, fqn, factors)
            report.plan[fqn] = {"method": method.name, "ranks": list(r)}
        if _plain_forward_error(model, inputs) is not None:
            _keep_dense_where_it_breaks(model, inputs, todo, entries, report)
        after = measure_layers(model, inputs)
        plan = dict(getattr(model, PLAN_ATTR, {}) or {})
        plan.update(report.plan)
        setattr(model, PLAN_ATTR, plan)
    for fqn in report.plan:
        entries[fqn].macs_after = macs_under(after, fqn)
    report.params_after = count_params(model)
    report.macs_after = sum(s.macs for s in after.values())
    return report


def _plain_forward_error(model: nn.Module, inputs: tuple) -> str | None:
    """Run ``model`` as a user would (eval, no hooks): ``None`` if it runs, else the error.

    Hooks are not enough: ``nn.TransformerEncoderLayer``'s fused fast path, taken only without hooks, reads
    ``linear1.weight`` directly, so a factored ``linear1`` breaks it while every hooked pass succeeds.
    """
    with training_mode(model, False):
        try:
            model(*inputs)
            return None
        except Exception as err:  # noqa: BLE001 - any failure means the decomposed model does not run
            return f"{type(err).__name__}: {err}"


def _keep_dense_where_it_breaks(model: nn.Module, inputs: tuple, todo: list, entries: dict[str, Any],
                                report: DecomposeReport) -> None:
    """Put back, one by one, the original layers whose factored form makes the model fail; report why."""
    factored = {fqn: get_submodule(model, fqn) for fqn, *_ in todo}
    for fqn, module, *_ in todo:
        set_submodule(model, fqn, module)
    for fqn, module, *_ in todo:
        set_submodule(model, fqn, factored[fqn])
        error = _plain_forward_error(model, inputs)
        if error is not None:
            set_submodule(model, fqn, module)
            entries[fqn].skipped = f"kept dense: the model fails with it factored ({error[:120]})"
            entries[fqn].ranks = None
            entries[fqn].params_after = entries[fqn].params_before
            entries[fqn].weight_error = None
            report.plan.pop(fqn, None)
    error = _plain_forward_error(model, inputs)
    if error is not None:
        raise GraphError(f"decompose: {type(model).__name__} fails after decomposition ({error}); unchanged")


def _budget_ranks(
    config: DecomposeConfig, chosen: list[tuple[str, nn.Module, Method, LayerShape]], report: DecomposeReport
) -> list[tuple[int, ...] | None]:
    """Global allocation under a params or MACs target; layers that would need their dense cost stay dense
    (``None``)."""
    index = 0 if config.target_params is not None else 1
    value = float(config.target_params if index == 0 else config.target_macs)  # type: ignore[arg-type]
    total = report.params_before if index == 0 else report.macs_before
    target = _budget(value, total)
    dense = [count_params(module) if index == 0 else shape.macs for _, module, _, shape in chosen]
    items = [
        BudgetItem(
            method.spectra(module),
            method.max_ranks(module),
            lambda r, m=method, mod=module, g=shape.geometry: m.cost(mod, r, g)[index],
            limit=cost,
        )
        for (_, module, method, shape), cost in zip(chosen, dense)
    ]
    active = list(range(len(chosen)))
    while True:
        budget = target - (total - sum(dense[i] for i in active))
        if budget <= 0:
            raise ConfigError(
                f"decompose: target {target:,} leaves nothing for the decomposable layers; the rest of the model "
                f"already needs {total - sum(dense[i] for i in active):,}"
            )
        allocation = allocate_ranks([items[i] for i in active], budget)
        keep = [i for i, full in zip(active, allocation.saturated) if not full]
        if len(keep) == len(active) or not keep:
            break
        active = keep
    ranks: list[tuple[int, ...] | None] = [None] * len(chosen)  # None: keep dense
    for i, r in zip(active, allocation.ranks):
        ranks[i] = r
    return ranks


def _choose_ranks(
    config: DecomposeConfig, chosen: list[tuple[str, nn.Module, Method, LayerShape]], report: DecomposeReport
) -> list[tuple[int, ...] | None]:
    """Ranks for each chosen layer under the config's rank rule."""
    if config.target_params is not None or config.target_macs is not None:
        return _budget_ranks(config, chosen, report)
    ranks: list[tuple[int, ...] | None] = []
    for _, module, method, _ in chosen:
        if isinstance(config.rank, int):
            wanted: Iterable[int] = (config.rank,) * method.num_modes
        elif config.energy is not None:
            wanted = [energy_rank(s, config.energy) for s in method.spectra(module)]
        else:  # "vbmf" or nothing given
            wanted = method.vbmf_ranks(module)
        ranks.append(_fit_ranks(method, module, wanted))
    return ranks


def apply_plan(model: nn.Module, plan: dict[str, dict[str, Any]]) -> None:
    """Give ``model`` the factor structure of ``plan`` (from :attr:`DecomposeReport.plan`), weights unset.

    Used to rebuild a decomposed model from its original architecture before loading its state dict.
    """
    with transaction(model):
        for fqn, spec in plan.items():
            module = get_submodule(model, fqn)
            method = METHODS.get(str(spec["method"]))
            reason = method.skip_reason(module)
            if reason:
                raise GraphError(f"{label(fqn, module)}: cannot apply {method.name} from the plan: {reason}")
            set_submodule(model, fqn, method.build(module, tuple(int(r) for r in spec["ranks"])))
        merged = dict(getattr(model, PLAN_ATTR, {}) or {})
        merged.update(plan)
        setattr(model, PLAN_ATTR, merged)
