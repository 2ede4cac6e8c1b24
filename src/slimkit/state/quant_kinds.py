"""Quantized layers as data: the layer's position plus its weight and input quantizers' settings.

A quantizer is named by a stable string and rebuilt from its settings; its tensors (scales, zero points, learned
steps, TTQ scales) come from the state dict like any other weight. Users describe their own quantizer types with
:func:`register_quantizer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from slimkit.core.errors import CheckpointError
from slimkit.core.modules import get_submodule, label, set_submodule
from slimkit.core.registry import Registry
from slimkit.state.structure import Entries, Tensors

Describe = Callable[[nn.Module], dict[str, Any]]
Build = Callable[[dict[str, Any]], nn.Module]
_QUANTIZERS: Registry[tuple[type, Describe, Build]] = Registry("quantizer kind", casefold=False)


def register_quantizer(name: str, cls: type, describe: Describe, build: Build) -> None:
    """Let files hold quantizers of type ``cls``: ``describe(q) -> settings``, ``build(settings) -> q``."""
    _QUANTIZERS[name] = (cls, describe, build)


def _describe_fake_quant(q: nn.Module) -> dict[str, Any]:
    if q.observer is not None:
        raise CheckpointError("is in the middle of a calibration pass (observer attached); finish it first")
    return {"bits": q.bits, "symmetric": q.symmetric, "axis": q.axis, "observer": q.observer_kind.value,
            "learn_step": q.learn_step, "track_weights": q.track_weights, "percentile": q.percentile,
            "enabled": q.enabled, "step": q.step is not None}


def _build_fake_quant(s: dict[str, Any]) -> nn.Module:
    from slimkit.quant.fake_quant import FakeQuantize

    axis = s["axis"]
    if axis is not None and not isinstance(axis, int):
        raise CheckpointError(f"quantizer axis must be an integer or null, got {axis!r}")
    q = FakeQuantize(int(s["bits"]), symmetric=bool(s["symmetric"]), axis=axis, observer=str(s["observer"]),
                     learn_step=bool(s["learn_step"]), track_weights=bool(s["track_weights"]),
                     percentile=float(s["percentile"]))
    q.enabled = bool(s["enabled"])
    if s.get("step"):
        q.step = nn.Parameter(torch.ones(()))  # resized and filled by the state dict
    return q


def _register_builtins() -> None:
    from slimkit.quant.binary import BinaryWeight, SignActivation, TernaryWeight, TTQWeight
    from slimkit.quant.fake_quant import FakeQuantize

    register_quantizer("fake_quant", FakeQuantize, _describe_fake_quant, _build_fake_quant)
    register_quantizer("binary", BinaryWeight, lambda q: {"scaled": q.scaled},
                       lambda s: BinaryWeight(scaled=bool(s["scaled"])))
    register_quantizer("sign", SignActivation, lambda q: {}, lambda s: SignActivation())
    register_quantizer("ternary", TernaryWeight, lambda q: {"threshold": q.threshold},
                       lambda s: TernaryWeight(threshold=float(s["threshold"])))
    register_quantizer("ttq", TTQWeight, lambda q: {"threshold": q.threshold},
                       lambda s: TTQWeight(torch.ones(1), threshold=float(s["threshold"])))


def _describe_quantizer(fqn: str, q: nn.Module | None) -> dict[str, Any] | None:
    if q is None:
        return None
    if not _QUANTIZERS:
        _register_builtins()
    for name, (cls, describe, _) in _QUANTIZERS.items():
        if type(q) is cls:
            try:
                return {"type": name, **describe(q)}
            except CheckpointError as err:
                raise CheckpointError(f"{label(fqn, q)}: {err}") from None
    raise CheckpointError(f"{label(fqn, q)}: quantizer type {type(q).__name__} cannot be recorded in a file "
                          "(register it with slimkit.state.register_quantizer)")


def _build_quantizer(settings: Any) -> nn.Module | None:
    if settings is None:
        return None
    if not _QUANTIZERS:
        _register_builtins()
    if not isinstance(settings, dict) or settings.get("type") not in _QUANTIZERS:
        raise CheckpointError(f"unknown quantizer {settings!r}")
    return _QUANTIZERS[settings["type"]][2](settings)


def describe_quant_layers(model: nn.Module) -> tuple[Entries, Tensors]:
    from slimkit.quant.modules import is_quant_layer

    found = []
    for fqn, module in model.named_modules():
        if is_quant_layer(module):
            found.append({
                "fqn": fqn,
                "weight_quant": _describe_quantizer(f"{fqn}.weight_quant", module.weight_quant),
                "input_quant": _describe_quantizer(f"{fqn}.input_quant", module.input_quant),
            })
    return found, {}


def restore_quant_layer(model: nn.Module, entry: dict, _: Tensors) -> None:
    from slimkit.quant.modules import QUANT_LAYERS, to_quant_layer

    fqn = entry["fqn"]
    try:
        module = get_submodule(model, fqn)
    except Exception:  # noqa: BLE001
        raise CheckpointError(f"the model has no module {fqn!r}") from None
    if type(module) not in QUANT_LAYERS:
        raise CheckpointError(f"{label(fqn, module)}: is not a layer type slimkit quantizes")
    weight_q = _build_quantizer(entry["weight_quant"])
    if weight_q is None:
        raise CheckpointError(f"{label(fqn, module)}: a quantized layer needs a weight quantizer")
    set_submodule(model, fqn, to_quant_layer(module, weight_q, _build_quantizer(entry.get("input_quant"))))
