"""``quantize``: the one verb. It dispatches on the config's type to a registered handler.

Handlers are ``fn(model, config, calibration, filter_fn) -> QuantReport``; add one for your own config type with
``@register_quantize_handler(MyConfig, name="my_method")``. The name makes it a *quantization method*: the recipe's
``quantize`` stage builds the config from it (``scheme: my_method``). Built-in and user methods are registered the
same way, in one registry (``QUANT_METHODS``) whose entries are found by importing every module of
:mod:`slimkit.quant`, so no list names them. The transform is atomic: if a handler raises, the model is restored.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from slimkit.core.config import parse_config
from slimkit.core.errors import ConfigError, DataError
from slimkit.core.modules import FilterFn, count_params, iter_modules, model_device
from slimkit.core.registry import Registry
from slimkit.core.transaction import transaction
from slimkit.quant.modules import is_quant_layer, quantizable_types
from slimkit.quant.report import QuantReport

Handler = Callable[[nn.Module, Any, list[torch.Tensor], "FilterFn | None"], QuantReport]


@dataclasses.dataclass(frozen=True)
class QuantMethod:
    """A quantization method as recipes name it: a config type, and the fields its name fixes.

    ``bwn`` is ``BinaryConfig`` with ``method="bwn"``; ``uniform`` is ``QuantConfig`` with nothing fixed.

    Attributes:
        name: the method's name (``scheme:`` in the recipe's ``quantize`` stage).
        config_cls: the frozen config dataclass whose handler :func:`quantize` runs.
        fixed: fields the name sets; a user may not set them again.
    """

    name: str
    config_cls: type
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def build(self, options: Mapping[str, Any], *, shared: Mapping[str, Any] | None = None,
              where: str = "") -> Any:
        """The method's config from ``options`` (its fields, nested configs as mappings), over ``shared``.

        Args:
            shared: values offered to whichever fields of the config, or of a config nested in it (mixed
                precision's ``quant``), have their name: the quantize stage's common fields (``weight_bits``,
                ``ignore``, ...). ``options`` win over them.

        Raises:
            ConfigError: naming ``where`` and the field.
        """
        prefix = f"{where}." if where else ""
        clash = sorted(set(options) & set(self.fixed))
        if clash:
            raise ConfigError(f"{prefix}{clash[0]}: set by the method's name {self.name!r} "
                              f"({clash[0]}={self.fixed[clash[0]]!r}); choose another method instead")
        data = {**fill_fields(self.config_cls, dict(shared or {})), **self.fixed}
        for name, value in options.items():  # a nested config's options add to the shared values it got
            data[name] = {**data[name], **value} if isinstance(data.get(name), dict) and isinstance(value, Mapping) \
                else value
        for name, kind in _nested(self.config_cls).items():  # built alone, so an error names its field
            if isinstance(data.get(name), dict):
                data[name] = parse_config(kind, data[name], where=f"{where}.{name}" if where else name)
        return parse_config(self.config_cls, data, where=where)


def _nested(cls: type) -> dict[str, type]:
    """The fields of config ``cls`` that are configs themselves (mixed precision's ``quant: QuantConfig``)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)
            if isinstance(hints[f.name], type) and dataclasses.is_dataclass(hints[f.name])}


def fill_fields(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that name a field of config ``cls``; a nested config field (``quant:
    QuantConfig``) gets a mapping of those naming its own fields."""
    nested = _nested(cls)
    out: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in values:
            out[field.name] = values[field.name]
        elif field.name in nested:
            inner = fill_fields(nested[field.name], values)
            if inner:
                out[field.name] = inner
    return out


_HANDLERS: Registry[Handler] = Registry("quantize handler", discover="slimkit.quant")
QUANT_METHODS: Registry[QuantMethod] = Registry("quantization method", discover="slimkit.quant")


def register_quantize_handler(config_cls: type, *, name: str | Iterable[str] | None = None,
                              name_field: str | None = None) -> Callable[[Handler], Handler]:
    """Make ``fn`` the way :func:`quantize` applies configs of type ``config_cls``.

    Args:
        name: also register the quantization method(s) of this name: ``{type: quantize, scheme: NAME,
            options: {...}}`` in a recipe builds ``config_cls`` (see :class:`QuantMethod`). Several names share one
            config when ``name_field`` is given. A module under ``slimkit/quant/`` is found without being listed.
        name_field: each name is also the value of this field (``name=("twn", "ttq"), name_field="method"``:
            ``scheme: ttq`` is ``TernaryConfig(method="ttq")``).
    """
    names = [name] if isinstance(name, str) else list(name or ())

    def add(fn: Handler) -> Handler:
        _HANDLERS[config_cls] = fn
        for each in names:
            fixed = {name_field: each} if name_field else {}
            QUANT_METHODS[each] = QuantMethod(each, config_cls, fixed)
        return fn

    return add


def _handler_for(config: Any) -> Handler:
    handler = _HANDLERS.for_type(type(config))
    if handler is not None:
        return handler
    known = ", ".join(sorted(c.__name__ for c, _ in _HANDLERS.items()))
    raise ConfigError(f"quantize: no handler for config type {type(config).__name__}; known: {known}")


def quantization_method(name: str) -> QuantMethod:
    """The quantization method registered as ``name`` (ConfigError listing them if none)."""
    return QUANT_METHODS.get(name)


def calibration_inputs(data: Iterable[Any] | None, limit: int, device: torch.device) -> list[torch.Tensor]:
    """The model inputs of at most ``limit`` batches: tensors, or the first item of ``(x, y)`` pairs."""
    if data is None:
        return []
    if isinstance(data, torch.Tensor):
        data = [data]
    batches: list[torch.Tensor] = []
    for batch in data:
        if len(batches) >= limit:
            break
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if not isinstance(x, torch.Tensor):
            raise DataError(f"calibration_data: expected tensors or (x, y) batches, got {type(x).__name__}")
        batches.append(x.to(device))
    return batches


def select_layers(
    model: nn.Module, *, filter_fn: FilterFn | None, ignore: Iterable[str], keep_first_last: bool
) -> tuple[list[tuple[str, nn.Module]], dict[str, str]]:
    """The conv/linear layers to quantize (registration order), and those skipped with the reason."""
    candidates = [
        (fqn, m) for fqn, m in model.named_modules() if isinstance(m, quantizable_types()) and not is_quant_layer(m)
    ]
    skipped: dict[str, str] = {}
    if keep_first_last and candidates:
        for fqn, _ in {candidates[0][0]: None, candidates[-1][0]: None}.items():
            skipped[fqn] = "first/last layer kept in full precision"
    chosen = []
    wanted = {fqn for fqn, _ in iter_modules(model, quantizable_types(), filter_fn=filter_fn, ignore=ignore)}
    for fqn, m in candidates:
        if fqn in skipped:
            continue
        if fqn not in wanted:
            skipped[fqn] = "excluded by filter_fn/ignore"
            continue
        if type(m) not in quantizable_types():
            # a subclass (e.g. attention's out_proj) whose owner reads .weight directly: a quantized twin
            # would never run, so the layer would be reported quantized while computing in float
            skipped[fqn] = f"{type(m).__name__} is not a registered quantizable type"
            continue
        chosen.append((fqn, m))
    return chosen, skipped


def quantize(
    model: nn.Module,
    config: Any,
    calibration_data: Iterable[Any] | None = None,
    *,
    filter_fn: FilterFn | None = None,
) -> QuantReport:
    """Quantize ``model`` in place as ``config`` says and report what changed.

    Args:
        model: any module; its Conv1d/Conv2d/Linear layers (and registered types) are quantized.
        config: ``QuantConfig``/``Int8Config`` (uniform PTQ or QAT), ``BinaryConfig``, ``TernaryConfig`` or
            ``MixedPrecisionConfig``.
        calibration_data: batches (tensors or ``(x, y)``) for activation ranges; needed when activations are
            quantized and for mixed precision.
        filter_fn: ``filter_fn(module, fqn) -> bool``; only layers for which it is true are quantized.

    Returns:
        A :class:`QuantReport` (per-layer bits, sizes, folded BatchNorms).

    Raises:
        ConfigError: unknown config type or inconsistent options. DataError: missing calibration data.

    Example:
        >>> report = slimkit.quantize(model, Int8Config(), calibration_data=batches)
        >>> print(report.table())
    """
    handler = _handler_for(config)
    limit = int(getattr(config, "calibration_batches", 8))
    calibration = calibration_inputs(calibration_data, limit, model_device(model))
    size_fp32 = 4 * count_params(model)
    with transaction(model):
        report = handler(model, config, calibration, filter_fn)
    report.size_bytes_fp32 = size_fp32
    return report


def storage_bytes(model: nn.Module, quantized: dict[str, tuple[int, int]]) -> int:
    """Bytes of ``model``'s parameters: layers in ``quantized`` (fqn -> (bits, extra bytes)) store their weight
    at ``bits`` plus ``extra``; every other parameter at 32 bits."""
    total_bits = 0
    seen: set[int] = set()
    for fqn, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            if name == "weight" and fqn in quantized:
                bits, extra = quantized[fqn]
                total_bits += p.numel() * bits + 8 * extra
            elif fqn.endswith("weight_quant") or ".weight_quant" in fqn:
                continue  # learned quantizer scales are counted in ``extra``
            else:
                total_bits += 32 * p.numel()
    return (total_bits + 7) // 8


def check_no_quant_layers(model: nn.Module) -> None:
    for fqn, m in model.named_modules():
        if is_quant_layer(m):
            raise ConfigError(f"{fqn}: model is already quantized; quantize the float model")


