"""``quantize``: the one verb. It dispatches on the config's type to a registered handler.

Handlers are ``fn(model, config, calibration, filter_fn) -> QuantReport``; add one for your own config type with
``@register_quantize_handler(MyConfig)``. The transform is atomic: if a handler raises, the model is restored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from slimkit.core.errors import ConfigError, DataError
from slimkit.core.modules import FilterFn, count_params, iter_modules, model_device
from slimkit.core.registry import Registry
from slimkit.core.transaction import transaction
from slimkit.quant.modules import is_quant_layer, quantizable_types
from slimkit.quant.report import QuantReport

Handler = Callable[[nn.Module, Any, list[torch.Tensor], "FilterFn | None"], QuantReport]
_HANDLERS: Registry[Handler] = Registry("quantize handler")
QUANT_METHODS: Registry[type] = Registry("quantization method")  # recipe name -> config type


def register_quantize_handler(config_cls: type, *, name: str | None = None) -> Callable[[Handler], Handler]:
    """Make ``fn`` the way :func:`quantize` applies configs of type ``config_cls``.

    Args:
        name: also offer the method to recipes: ``{type: quantize, scheme: NAME, options: {...}}`` builds
            ``config_cls(**options)``. A module under ``slimkit/quant/`` is found without being listed anywhere.
    """

    def add(fn: Handler) -> Handler:
        _HANDLERS[config_cls] = fn
        if name is not None:
            QUANT_METHODS[name] = config_cls
        return fn

    return add


def _handler_for(config: Any) -> Handler:
    _load_handlers()
    handler = _HANDLERS.for_type(type(config))
    if handler is not None:
        return handler
    known = ", ".join(sorted(c.__name__ for c, _ in _HANDLERS.items()))
    raise ConfigError(f"quantize: no handler for config type {type(config).__name__}; known: {known}")


def _load_handlers() -> None:
    """Import every module of :mod:`slimkit.quant`, so the handlers (and method names) they register exist."""
    import importlib
    import pkgutil

    import slimkit.quant as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")


def quantization_method(name: str) -> type:
    """The config type registered as recipe quantization method ``name`` (ConfigError listing them if none)."""
    _load_handlers()
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


