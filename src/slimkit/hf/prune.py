"""``prune_pretrained``: prune a Hugging Face transformer by heads, FFN neurons and hidden width, keep every layer
of a kind equal, and write the new sizes to its config so ``save_pretrained`` / ``from_pretrained`` round-trip.

Example:
    >>> report = slimkit.hf.prune_pretrained(model, (input_ids,), units=("heads", "ffn"), ratio=0.5)
    >>> print(report.table())              # heads and FFN width per layer, before -> after
    >>> model.save_pretrained("pruned")    # AutoModel.from_pretrained("pruned") gives the same outputs
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import nn

from slimkit.core.config import check_ratio, parse_config
from slimkit.core.errors import ConfigError
from slimkit.core.gc_pause import gc_paused
from slimkit.core.transaction import transaction
from slimkit.graph.groups import ChannelGraph, build_graph
from slimkit.hf.modules import PARTS
from slimkit.hf.sync import HFConfigError, layer_widths, sync_config
from slimkit.prune.config import PruneConfig
from slimkit.prune.importance import ImportanceContext, channel_scores
from slimkit.prune.select import _Eligible, _keep_count, eligible_groups, select_channels
from slimkit.prune.structured import PruneReport, make_plan

UNITS = ("heads", "ffn", "hidden")


class HFConfigWarning(UserWarning):
    """Pruned with ``require_config=False``, and the config cannot describe the result: a bare
    ``model.save_pretrained`` would write a checkpoint that does not reload."""


@dataclass(frozen=True)
class HFPruneConfig:
    """Options of :func:`prune_pretrained`.

    Attributes:
        units: what goes: ``heads`` (whole attention heads; under grouped-query attention whole KV groups with
            their query heads), ``ffn`` (FFN neurons), ``hidden`` (the residual width; inexact under LayerNorm
            and RMSNorm, fine-tune after). Hugging Face attention reshapes to ``(..., -1, head_dim)``, so head
            dims are not a unit here (use :func:`slimkit.prune_channels` with ``attention="head_dims"`` on
            ``nn.MultiheadAttention``).
        ratio: fraction of each unit removed, for units without their own amount below.
        heads: heads removed per layer as a ratio (float in [0, 1)), or heads kept per layer (int >= 1; under
            GQA a multiple of the query heads per KV head).
        ffn: FFN neurons, a ratio removed or a count kept per layer.
        hidden: hidden width, a ratio removed or a count kept.
        scope: ``uniform``: every layer of a kind keeps the same count (what a config can store);
            ``global``: one ranking per unit kind across layers (layers may differ: a config cannot store that,
            so pass ``require_config=False`` and save with :func:`slimkit.save_model`).
        require_config: the config must describe the result (``save_pretrained`` / ``from_pretrained`` then
            round-trip); when it cannot, raise HFConfigError and leave the model as it was. False: prune anyway,
            leave the config as it was, warn, and say why in ``report.config_error`` (for ONNX export or
            :func:`slimkit.save_model`, which store any widths).
        importance: a criterion as :class:`slimkit.PruneConfig` takes it: a registered name (l1, l2, fpgm, taylor,
            random...), a mapping ``{"name": ..., **options}`` or an ``Importance`` object (your own scores).
        round_to: keep channel counts at multiples of this (heads count by their width); ``"auto"`` as in
            :class:`slimkit.PruneConfig`.
        seed: for ``random`` importance and tie-breaking.
    """

    units: tuple[str, ...] = ("heads", "ffn")
    ratio: float = 0.5
    heads: float | int | None = None
    ffn: float | int | None = None
    hidden: float | int | None = None
    scope: Literal["uniform", "global"] = "uniform"
    # Any for pydantic (PruneConfig checks and resolves it); str | Mapping | Importance in fact
    importance: Any = field(default="l1", metadata={"registry": "slimkit.prune.importance:CRITERIA"})
    round_to: int | Literal["auto"] | None = None
    seed: int = 0
    require_config: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", (self.units,) if isinstance(self.units, str) else tuple(self.units))
        for unit in self.units:
            if unit not in UNITS:
                hint = " (Hugging Face attention keeps its head size; prune heads)" if unit == "head_dims" else ""
                raise ValueError(f"units: unknown unit {unit!r}{hint}; choose from {', '.join(UNITS)}")
        check_ratio("ratio", self.ratio)
        for unit in UNITS:
            amount = getattr(self, unit)
            if isinstance(amount, bool) or (amount is not None and not isinstance(amount, (int, float))):
                raise ValueError(f"{unit} must be a ratio (float) or a count kept (int), got {amount!r}")
            if isinstance(amount, float):
                check_ratio(unit, amount)
            elif isinstance(amount, int) and amount < 1:
                raise ValueError(f"{unit}: a count kept must be >= 1, got {amount}")
        if self.scope not in ("uniform", "global"):
            raise ValueError(f"scope must be 'uniform' or 'global', got {self.scope!r}")

    def amount(self, unit: str) -> float | int:
        value = getattr(self, unit)
        return self.ratio if value is None else value

    def prune_config(self) -> PruneConfig:
        """The engine's config: whole heads, this criterion and rounding."""
        return PruneConfig(ratio=self.ratio, importance=self.importance, attention="heads", round_to=self.round_to,
                           seed=self.seed, max_group_ratio=1.0)


@dataclass(frozen=True)
class LayerWidth:
    """One module's size in one config field, before and after (``num_attention_heads`` of
    ``encoder.layer.0.attention.self``: 4 -> 2)."""

    module: str
    field: str
    before: int
    after: int


@dataclass
class HFPruneReport:
    """What :func:`prune_pretrained` did: the engine's report, per-layer widths, the config fields written."""

    prune: PruneReport
    layers: list[LayerWidth]
    config_fields: dict[str, int] = field(default_factory=dict)
    config_error: str = ""  # why the config was left as it was (require_config=False)

    @property
    def macs_reduction(self) -> float:
        return self.prune.macs_reduction

    @property
    def params_reduction(self) -> float:
        return self.prune.params_reduction

    def table(self) -> str:
        rows = [f"{'module':<44} {'field':<24} {'before':>6} -> after"]
        rows += [f"{w.module[:44]:<44} {w.field:<24} {w.before:>6} -> {w.after}" for w in self.layers]
        p = self.prune
        rows.append(f"MACs {p.macs_before:,} -> {p.macs_after:,} ({p.macs_reduction:.2f}x); "
                    f"params {p.params_before:,} -> {p.params_after:,} ({p.params_reduction:.2f}x)")
        rows.append(f"config: {self.config_fields}" if not self.config_error else f"config unchanged: {self.config_error}")
        return "\n".join(rows)


@dataclass(frozen=True)
class _Kind:
    unit: str
    field: str  # the config field its layers must agree on
    module: str  # the Hugging Face module (attention, MLP) for units of a layer; "" for hidden
    count: int  # its heads / neurons / width before pruning


def _kinds(model: nn.Module, graph: ChannelGraph) -> dict[int, _Kind]:
    """Unit kind of each prunable group (by index in ``graph.groups``); groups of no kind stay whole."""
    inner: dict[str, _Kind] = {}
    for name, module in model.named_modules():
        part = PARTS.get(type(module).__name__)
        fields = part.sync(module, name) if part is not None else {}
        if fields:
            first = next(iter(fields))
            inner[f"{name}.{part.inner}" if name else part.inner] = _Kind(part.unit, first, name, fields[first])
    modules = dict(model.named_modules())
    embed = _input_embedding(model)
    kinds = {}
    for i, g in enumerate(graph.groups):  # the residual stream passes the norms (and starts at the embedding)
        stream = [m for m in g.modules if modules.get(m) is embed
                  or type(modules.get(m)).__name__.endswith(("LayerNorm", "RMSNorm"))]
        if stream:
            kinds[i] = _Kind("hidden", "hidden", "", g.size * g.width)
            continue
        found = [inner[m] for m in g.modules if m in inner]
        if found:
            kinds[i] = found[0]
    return kinds


def _input_embedding(model: nn.Module) -> nn.Module | None:
    try:
        return model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return None


def _units_kept(kind: _Kind, group_size: int, kept: int) -> int:
    """A count kept per layer, in the group's units (a KV group holds several query heads)."""
    per_unit = max(kind.count // group_size, 1)
    if kept % per_unit:
        raise ConfigError(f"{kind.unit}={kept}: {kind.module} groups {per_unit} query heads per key/value head, "
                          f"so keep a multiple of {per_unit}")
    return min(kept // per_unit, group_size)


def _select(graph: ChannelGraph, scores: torch.Tensor, eligible: list[_Eligible], kinds: dict[int, _Kind],
            config: HFPruneConfig, pconfig: PruneConfig) -> torch.Tensor:
    """The channels to remove: per unit kind, the same count in every layer (uniform) or one ranking (global)."""
    index = {id(g): i for i, g in enumerate(graph.groups)}
    by_field: dict[tuple[str, str], list[tuple[_Eligible, _Kind]]] = {}
    for e in eligible:
        kind = kinds.get(index[id(e.group)])
        if kind is not None and kind.unit in config.units:
            by_field.setdefault((kind.unit, kind.field), []).append((e, kind))
    removed = torch.zeros(graph.num_channels, dtype=torch.bool)
    for (unit, _), members in by_field.items():
        amount = config.amount(unit)
        if config.scope == "global" and isinstance(amount, float):
            removed |= select_channels(graph, scores, [e for e, _ in members], replace(pconfig, ratio=amount), amount)
            continue
        for e, kind in members:
            n = e.group.size
            wanted = n * (1 - amount) if isinstance(amount, float) else _units_kept(kind, n, amount)
            keep = _keep_count(n, float(wanted), e.group.width, pconfig, 1.0)
            removed[e.order[: n - keep]] = True
    return removed


def _check_known(model: nn.Module) -> None:
    """A Hugging Face model with at least one attention or MLP class registered in :mod:`slimkit.hf.modules`."""
    if not hasattr(getattr(model, "config", None), "to_dict"):
        raise ConfigError(f"{type(model).__name__} is not a Hugging Face model (no .config); use "
                          "slimkit.prune_channels")
    if not any(type(m).__name__ in PARTS for m in model.modules()):
        raise ConfigError(f"{type(model).__name__}: slimkit.hf knows none of its attention or MLP classes; register "
                          "them with slimkit.hf.register_hf_module, or use slimkit.prune_channels and "
                          "slimkit.save_model")


def _as_tuple(inputs: Any) -> tuple:
    return inputs if isinstance(inputs, tuple) else (inputs,)


def prune_pretrained(model: nn.Module, example_inputs: Any, config: HFPruneConfig | dict | None = None, *,
                     importance_data: Iterable[Any] | None = None, loss_fn: Callable[..., torch.Tensor] | None = None,
                     **options: Any) -> HFPruneReport:
    """Prune a Hugging Face ``model`` in place by whole heads, FFN neurons and/or hidden width, and sync its config.

    Args:
        model: a ``transformers`` model (BERT, RoBERTa, DistilBERT, GPT-2, Llama, Qwen2, Mistral, T5, ViT,
            Whisper; others whose attention and MLP classes are registered in :mod:`slimkit.hf.modules`).
        example_inputs: positional inputs of one forward (``(input_ids,)``; T5 ``(ids, None, decoder_ids)``).
        config: an :class:`HFPruneConfig` or a dict of its fields; keyword ``options`` override them.
        importance_data: a few ``(inputs, targets)`` batches, for ``importance="taylor"``.
        loss_fn: loss for ``taylor`` (default cross entropy).

    Returns:
        HFPruneReport: the engine's report, each layer's heads / KV heads / FFN width before and after, and the
        config fields written.

    Raises:
        ConfigError: a bad option. HFConfigError: with ``require_config`` (the default), the config cannot
            store the result (layers differ, or BERT-style configs derive the head size from the hidden size);
            the model is left as it was.
    """
    if config is None or isinstance(config, dict):
        config = parse_config(HFPruneConfig, {**dict(config or {}), **options})
    elif options:
        try:
            config = replace(config, **options)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"HFPruneConfig: {err}") from None
    _check_known(model)
    pconfig = config.prune_config()
    inputs = _as_tuple(example_inputs)
    with gc_paused():
        before = layer_widths(model)
        graph = build_graph(model, inputs, attention="heads")
        ctx = ImportanceContext(pconfig.aggregate.value, pconfig.debias, pconfig.seed, inputs, importance_data,
                                loss_fn)
        scores = channel_scores(graph, pconfig.importance, ctx) if graph.num_channels else torch.zeros(0)
        eligible, excluded = eligible_groups(graph, scores, pconfig)
        removed = _select(graph, scores, eligible, _kinds(model, graph), config, pconfig)
        plan = make_plan(graph, removed, inputs, pconfig, [(g.name, why) for g, why in excluded])
        fields, error = {}, ""
        with transaction(model, replaces_only=True):
            report = plan.apply()
            try:
                fields = sync_config(model)
            except HFConfigError as err:
                if config.require_config:
                    raise
                error = str(err)
    if error:
        warnings.warn(HFConfigWarning(f"pruned, config left as it was: {error}"), stacklevel=2)
    after = layer_widths(model)
    layers = [LayerWidth(name, f, value, after.get(f, {}).get(name, value))
              for f, by_layer in before.items() for name, value in by_layer.items()]
    return HFPruneReport(report, layers, fields, error)


def save_pretrained(model: nn.Module, path: Any, **kwargs: Any) -> None:
    """:func:`sync_config`, then ``model.save_pretrained(path, **kwargs)``: a model whose config cannot say what
    its weights are is refused with :class:`HFConfigError` (naming the fields and layers) instead of written."""
    sync_config(model)
    model.save_pretrained(path, **kwargs)
