"""The built-in structure kinds: the module-tree edits slimkit's own transforms make.

Replay order: removed blocks, other ``nn.Identity`` replacements (folded BatchNorms), factored (low-rank)
layers, attention head counts, quantized layers; then, with the weights loaded, attributes of the user's own
modules, k-means weight sharing and unstructured-pruning masks.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from slimkit.core.errors import CheckpointError
from slimkit.core.modules import get_submodule, set_submodule
from slimkit.state.quant_kinds import describe_quant_layers, restore_quant_layer
from slimkit.state.structure import STRUCTURE_KINDS, Entries, StructureKind, Tensors, register_structure_kind


def _module(model: nn.Module, fqn: Any) -> nn.Module:
    if not isinstance(fqn, str):
        raise CheckpointError(f"fqn must be a string, got {type(fqn).__name__}")
    try:
        return get_submodule(model, fqn)
    except Exception:  # noqa: BLE001 - any lookup failure means the file does not fit the model
        raise CheckpointError(f"the model has no module {fqn!r}") from None


# -- removed blocks and other Identity replacements ---------------------------------------------------------------

def _describe_removed(model: nn.Module) -> tuple[Entries, Tensors]:
    from slimkit.prune.methods.layer_removal import REMOVED_ATTR

    names = [n for n in getattr(model, REMOVED_ATTR, None) or [] if isinstance(n, str)]
    return ([{"names": names}] if names else []), {}


def _restore_removed(model: nn.Module, entry: dict, _: Tensors) -> None:
    from slimkit.prune.methods.layer_removal import restore_removed_layers

    for name in entry["names"] if isinstance(entry.get("names"), list) else []:
        _module(model, name)
    restore_removed_layers(model, entry["names"])


def _describe_identity(model: nn.Module) -> tuple[Entries, Tensors]:
    return [{"fqn": fqn} for fqn, m in model.named_modules() if fqn and type(m) is nn.Identity], {}


def _restore_identity(model: nn.Module, entry: dict, _: Tensors) -> None:
    if type(_module(model, entry["fqn"])) is not nn.Identity:
        set_submodule(model, entry["fqn"], nn.Identity())


# -- low-rank factors ----------------------------------------------------------------------------------------------

def _describe_lowrank(model: nn.Module) -> tuple[Entries, Tensors]:
    from slimkit.lowrank._base import Factorized

    found = []
    for fqn, module in model.named_modules():
        if isinstance(module, Factorized):
            found.append({"fqn": fqn, "method": module.method, "ranks": list(module.ranks)})
    return found, {}


def _restore_lowrank(model: nn.Module, entry: dict, _: Tensors) -> None:
    from slimkit.lowrank.api import apply_plan

    _module(model, entry["fqn"])
    ranks = entry["ranks"]
    if not isinstance(ranks, list) or not all(isinstance(r, int) and r > 0 for r in ranks):
        raise CheckpointError(f"{entry['fqn']}: ranks must be positive integers, got {ranks!r}")
    apply_plan(model, {entry["fqn"]: {"method": str(entry["method"]), "ranks": ranks}})


# -- attention heads -----------------------------------------------------------------------------------------------

def _describe_heads(model: nn.Module) -> tuple[Entries, Tensors]:
    return [{"fqn": fqn, "num_heads": m.num_heads} for fqn, m in model.named_modules()
            if isinstance(m, nn.MultiheadAttention)], {}


def _restore_heads(model: nn.Module, entry: dict, _: Tensors) -> None:
    from slimkit.core.shapes import restore_attention_heads

    restore_attention_heads(model, {entry["fqn"]: entry["num_heads"]})


# -- attributes of the user's own modules ------------------------------------------------------------------------

def _int_like(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, (tuple, list)) and len(value) <= 64 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value)


def _describe_ints(model: nn.Module) -> tuple[Entries, Tensors]:
    """Integer attributes (``self.channels = 16``) of modules that are not torch's: a structured cut may have
    changed them, and the rebuilt architecture would otherwise keep the original numbers."""
    found = []
    for fqn, module in model.named_modules():
        if type(module).__module__.startswith("torch."):
            continue
        attrs = {k: (list(v) if isinstance(v, (tuple, list)) else v) for k, v in vars(module).items()
                 if not k.startswith("_") and _int_like(v)}
        if attrs:
            found.append({"module": fqn, "attributes": attrs})
    return found, {}


def _restore_ints(model: nn.Module, entry: dict, _: Tensors) -> None:
    module = _module(model, entry["module"])
    attrs = entry["attributes"]
    if not isinstance(attrs, dict):
        raise CheckpointError(f"{entry['module']}: attributes must be an object")
    for key, value in attrs.items():
        current = vars(module).get(key)
        if current is None or not _int_like(current) or not _int_like(value):
            continue  # the rebuilt module has no such number: nothing to restore
        setattr(module, key, tuple(value) if isinstance(current, tuple) else value)


# -- k-means weight sharing ----------------------------------------------------------------------------------------

def _describe_shared(model: nn.Module) -> tuple[Entries, Tensors]:
    from slimkit.quant.kmeans import SharedWeight

    found, tensors = [], {}
    for fqn, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for attr, chain in module.parametrizations.items():
            if len(chain) == 1 and isinstance(chain[0], SharedWeight):
                owner = f"{fqn}.parametrizations.{attr}" if fqn else f"parametrizations.{attr}"
                name = f"codebook.{fqn}.{attr}" if fqn else f"codebook.{attr}"
                tensors[name] = chain[0].codebook.detach().cpu()
                found.append({"fqn": owner, "module": fqn, "tensor": attr, "codebook": name})
    return found, tensors


def _restore_shared(model: nn.Module, entry: dict, tensors: Tensors) -> None:
    """Re-share a loaded dense weight: each value's index is its (first) position in the saved codebook."""
    from slimkit.quant.kmeans import SharedWeight

    module = _module(model, entry["module"])
    attr = entry["tensor"]
    weight = module._parameters.get(attr) if isinstance(attr, str) else None
    codebook = tensors.get(str(entry.get("codebook")))
    if weight is None:
        raise CheckpointError(f"{entry['module']}: has no parameter {attr!r} to share")
    if codebook is None or codebook.dim() != 1 or not codebook.is_floating_point():
        raise CheckpointError(f"{entry['module']}.{attr}: its codebook tensor is missing or malformed")
    flat = weight.detach().reshape(-1)
    nonzero = flat != 0
    values = flat[nonzero]
    order = torch.argsort(codebook, stable=True)
    ranked = codebook[order].to(flat.dtype)
    at = torch.searchsorted(ranked, values).clamp_max(max(ranked.numel() - 1, 0))
    if ranked.numel() == 0 and values.numel() or not torch.equal(ranked[at], values):
        raise CheckpointError(f"{entry['module']}.{attr}: holds values that are not in its codebook")
    indices = torch.full(flat.shape, -1, dtype=torch.int64, device=flat.device)
    indices[nonzero] = order[at].to(flat.device)
    shared = SharedWeight(codebook.to(weight.dtype), indices.reshape(weight.shape))
    parametrize.register_parametrization(module, attr, shared, unsafe=True)


# -- unstructured-pruning masks ------------------------------------------------------------------------------------

def _describe_masks(model: nn.Module) -> tuple[Entries, Tensors]:
    from slimkit.prune.unstructured.masks import iter_masked

    found, tensors = [], {}
    for name, _module, attr, param, mask in iter_masked(model):
        fqn = name[: -len(attr) - 1] if name != attr else ""
        entry: dict[str, Any] = {"module": fqn, "tensor": attr}
        if torch.equal(mask, param.detach() != 0):
            entry["from_zeros"] = True
        else:
            entry["mask"] = f"mask.{name}"
            tensors[f"mask.{name}"] = mask.detach().cpu()
        found.append(entry)
    return found, tensors


def _restore_mask(model: nn.Module, entry: dict, tensors: Tensors) -> None:
    from slimkit.prune.unstructured.masks import set_mask

    module = _module(model, entry["module"])
    param = module._parameters.get(entry["tensor"])
    if param is None:
        raise CheckpointError(f"{entry['module']}: has no parameter {entry['tensor']!r} to mask")
    if entry.get("from_zeros"):
        mask = param.detach() != 0
    else:
        mask = tensors.get(str(entry.get("mask")))
        if mask is None or mask.dtype != torch.bool:
            raise CheckpointError(f"{entry['module']}.{entry['tensor']}: its mask tensor is missing or not boolean")
    set_mask(module, entry["tensor"], mask, fqn=entry["module"])


# -- non-persistent buffers ---------------------------------------------------------------------------------------

def _describe_buffers(model: nn.Module) -> tuple[Entries, Tensors]:
    """Buffers kept out of the state dict (``persistent=False``: a blur filter, a rotary cache): a structured cut
    may have sliced them, and the rebuilt architecture would otherwise keep the original ones."""
    from slimkit.prune.unstructured.masks import MASK_SUFFIX

    found, tensors = [], {}
    for fqn, module in model.named_modules():
        for name in sorted(module._non_persistent_buffers_set):
            buf = module._buffers.get(name)
            if buf is None or (name.endswith(MASK_SUFFIX) and buf.dtype == torch.bool):
                continue  # absent, or an unstructured-pruning mask (the mask kind records those)
            key = f"buffer.{fqn}.{name}" if fqn else f"buffer.{name}"
            tensors[key] = buf.detach().cpu()
            found.append({"module": fqn, "buffer": name, "tensor": key})
    return found, tensors


def _restore_buffer(model: nn.Module, entry: dict, tensors: Tensors) -> None:
    module = _module(model, entry["module"])
    name = entry["buffer"]
    if name not in module._non_persistent_buffers_set:
        raise CheckpointError(f"{entry['module']}: has no non-persistent buffer {name!r}")
    saved = tensors.get(str(entry.get("tensor")))
    if saved is None:
        raise CheckpointError(f"{entry['module']}.{name}: its tensor is missing")
    current = module._buffers.get(name)
    device = current.device if current is not None else None
    module._buffers[name] = saved.clone().to(device) if device is not None else saved.clone()


for _kind in (
    StructureKind("removed_layers", "before_load", _describe_removed, _restore_removed, order=0),
    StructureKind("identity", "before_load", _describe_identity, _restore_identity, order=1),
    StructureKind("lowrank", "before_load", _describe_lowrank, _restore_lowrank, order=2),
    StructureKind("attention_heads", "before_load", _describe_heads, _restore_heads, order=3),
    StructureKind("quant_layer", "before_load", describe_quant_layers, restore_quant_layer, order=4),
    StructureKind("attributes", "after_load", _describe_ints, _restore_ints, order=10),
    StructureKind("shared_weight", "after_load", _describe_shared, _restore_shared, order=11),
    StructureKind("mask", "after_load", _describe_masks, _restore_mask, order=12),
    StructureKind("buffer", "before_load", _describe_buffers, _restore_buffer, order=5),
):
    if _kind.name not in STRUCTURE_KINDS:
        register_structure_kind(_kind)
