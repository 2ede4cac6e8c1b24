"""Boolean keep-masks on weights, stored beside the weights so the model stays a normal model.

A mask is a non-persistent bool buffer ``<param>_mask`` on the module that owns the parameter (``True`` = kept).
Being non-persistent it never enters ``state_dict``: a pruned model saves, loads and exports like a dense one, with
zeros where weights were pruned. Being a buffer it follows ``.to(device)`` and ``deepcopy``.

Two mechanisms keep pruned weights at zero while training:

* a gradient hook on each masked parameter zeroes the pruned entries of its gradient as soon as it is accumulated,
  so any training loop with a fresh optimizer (SGD with momentum and weight decay, Adam, AdamW) leaves them at
  exactly zero, even one that knows nothing about masks (e.g. a later ``finetune`` recipe stage);
* :class:`~slimkit.prune.unstructured.hooks.MaskHook` for the training engine (or :func:`apply_masks` after each
  optimizer step by hand) also re-zeros the weights and the optimizer's momentum after every step, which is needed
  when the optimizer carries state from before pruning.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import nn

from slimkit.core.errors import ConfigError, GraphError
from slimkit.core.modules import FilterFn, iter_modules, label

MASK_SUFFIX = "_mask"

#: Layer types whose ``weight`` is pruned by default (biases and norm layers are left dense, as in Han et al.).
PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


def prunable_weights(
    model: nn.Module,
    *,
    filter_fn: FilterFn | None = None,
    ignore: Iterable[str] = (),
    types: tuple[type[nn.Module], ...] = PRUNABLE_TYPES,
) -> list[tuple[str, nn.Module, nn.Parameter]]:
    """``(module_fqn, module, weight)`` of the layers to prune; a weight shared by several layers appears once."""
    seen: set[int] = set()
    out: list[tuple[str, nn.Module, nn.Parameter]] = []
    for fqn, module in iter_modules(model, types, filter_fn=filter_fn, ignore=ignore):
        weight = module._parameters.get("weight")
        if weight is None or id(weight) in seen:
            continue
        seen.add(id(weight))
        out.append((fqn, module, weight))
    return out


def _param_fqn(module_fqn: str, attr: str) -> str:
    return f"{module_fqn}.{attr}" if module_fqn else attr


def iter_masked(model: nn.Module) -> Iterator[tuple[str, nn.Module, str, torch.Tensor, torch.Tensor]]:
    """Yield ``(param_fqn, module, attr, param, mask)`` for every masked parameter of ``model``."""
    for fqn, module in model.named_modules():
        for name, buf in module._buffers.items():
            if buf is None or not name.endswith(MASK_SUFFIX) or buf.dtype != torch.bool:
                continue
            attr = name[: -len(MASK_SUFFIX)]
            param = module._parameters.get(attr)
            if param is not None and name in module._non_persistent_buffers_set:
                yield _param_fqn(fqn, attr), module, attr, param, buf


def set_mask(module: nn.Module, attr: str, mask: torch.Tensor, *, fqn: str = "") -> None:
    """Attach ``mask`` (bool, same shape as ``module.<attr>``) and zero the pruned entries.

    Raises:
        GraphError: when the shapes differ or the module has a foreign attribute of the mask's name.
    """
    param = module._parameters.get(attr)
    if param is None:
        raise GraphError(f"{label(fqn, module)}: has no parameter {attr!r} to mask")
    if tuple(mask.shape) != tuple(param.shape):
        raise GraphError(
            f"{label(fqn, module)}: mask of shape {tuple(mask.shape)} does not fit {attr} of shape {tuple(param.shape)}"
        )
    name = attr + MASK_SUFFIX
    mask = mask.to(device=param.device, dtype=torch.bool)
    if name in module._buffers and name in module._non_persistent_buffers_set:
        module._buffers[name] = mask
    elif hasattr(module, name):
        raise GraphError(f"{label(fqn, module)}: attribute {name!r} exists already and is not a slimkit mask")
    else:
        module.register_buffer(name, mask, persistent=False)
    _install_grad_hook(module, attr, param)
    with torch.no_grad():
        param.masked_fill_(mask.logical_not(), 0.0)


class _ZeroPrunedGrad:
    """Gradient hook zeroing pruned entries as soon as the gradient is accumulated.

    A picklable object (not a closure) so ``torch.save(model)`` still works; it reads the mask from the module at
    call time, so a replaced or removed mask (or a rolled-back transaction) is always honoured.
    """

    def __init__(self, module: nn.Module, attr: str) -> None:
        self.module = module
        self.name = attr + MASK_SUFFIX

    def __call__(self, param: torch.Tensor) -> None:
        mask = self.module._buffers.get(self.name)
        if mask is not None and param.grad is not None and mask.shape == param.grad.shape:
            param.grad.masked_fill_(mask.logical_not(), 0.0)


def _grad_hooks(param: torch.Tensor) -> dict:
    return getattr(param, "_post_accumulate_grad_hooks", None) or {}


def _install_grad_hook(module: nn.Module, attr: str, param: torch.Tensor) -> None:
    if not param.requires_grad:
        return
    if not any(isinstance(h, _ZeroPrunedGrad) and h.module is module for h in _grad_hooks(param).values()):
        param.register_post_accumulate_grad_hook(_ZeroPrunedGrad(module, attr))
    if _ensure_grad_hooks not in module._forward_pre_hooks.values():
        module.register_forward_pre_hook(_ensure_grad_hooks)


def _ensure_grad_hooks(module: nn.Module, args: tuple) -> None:
    """Forward pre-hook re-installing gradient hooks on copies (``deepcopy`` does not copy tensor hooks)."""
    for name, buf in module._buffers.items():
        if buf is not None and name.endswith(MASK_SUFFIX) and buf.dtype == torch.bool:
            attr = name[: -len(MASK_SUFFIX)]
            param = module._parameters.get(attr)
            if param is not None and param.requires_grad and not any(
                isinstance(h, _ZeroPrunedGrad) and h.module is module for h in _grad_hooks(param).values()
            ):
                param.register_post_accumulate_grad_hook(_ZeroPrunedGrad(module, attr))


def _remove_hooks(module: nn.Module, param: torch.Tensor) -> None:
    hooks = _grad_hooks(param)
    for key in [k for k, h in hooks.items() if isinstance(h, _ZeroPrunedGrad) and h.module is module]:
        del hooks[key]
    if not any(n.endswith(MASK_SUFFIX) for n in module._buffers):
        for key in [k for k, h in module._forward_pre_hooks.items() if h is _ensure_grad_hooks]:
            del module._forward_pre_hooks[key]


def get_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The keep-masks of ``model`` by parameter name, e.g. ``{"fc1.weight": BoolTensor}`` (``True`` = kept).

    A weight shared by several modules is listed once, under its first name.
    """
    seen: set[int] = set()
    masks: dict[str, torch.Tensor] = {}
    for name, _module, _attr, param, mask in iter_masked(model):
        if id(param) not in seen:
            seen.add(id(param))
            masks[name] = mask
    return masks


def set_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Attach masks given by parameter name (as returned by :func:`get_masks`) and zero the pruned weights.

    Raises:
        ConfigError: naming a parameter that ``model`` does not have.
    """
    params = dict(model.named_parameters(remove_duplicate=False))
    unknown = sorted(set(masks) - set(params))
    if unknown:
        raise ConfigError(f"masks: {type(model).__name__} has no parameter {unknown[0]!r}")
    for name, mask in masks.items():
        fqn, _, attr = name.rpartition(".")
        module = model.get_submodule(fqn) if fqn else model
        set_mask(module, attr, mask, fqn=fqn)


def apply_masks(model: nn.Module) -> None:
    """Zero every masked weight again (call after each optimizer step in a hand-written training loop)."""
    with torch.no_grad():
        for _name, _module, _attr, param, mask in iter_masked(model):
            param.masked_fill_(mask.logical_not(), 0.0)


def mask_gradients(model: nn.Module) -> None:
    """Zero the gradients of masked weights, so no optimizer sees a signal for them."""
    for _name, _module, _attr, param, mask in iter_masked(model):
        if param.grad is not None:
            param.grad.masked_fill_(mask.logical_not(), 0.0)


def mask_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Zero per-weight optimizer state (momentum, Adam moments) at pruned positions.

    Without this, momentum accumulated before pruning would keep pushing pruned weights after it.
    """
    for _name, _module, _attr, param, mask in iter_masked(model):
        state = optimizer.state.get(param)
        if not state:
            continue
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.shape == param.shape:
                value.masked_fill_(mask.logical_not(), 0)


def has_masks(model: nn.Module) -> bool:
    return next(iter_masked(model), None) is not None


def make_permanent(model: nn.Module) -> int:
    """Remove the mask machinery, leaving zeros in the weights; returns how many masks were removed.

    The model is then a plain model whose pruned weights are zeros (outputs are unchanged).
    """
    apply_masks(model)
    removed = 0
    for _name, module, attr, param, _mask in list(iter_masked(model)):
        name = attr + MASK_SUFFIX
        del module._buffers[name]
        module._non_persistent_buffers_set.discard(name)
        _remove_hooks(module, param)
        removed += 1
    return removed


def masks_from_zeros(
    model: nn.Module,
    *,
    filter_fn: FilterFn | None = None,
    ignore: Iterable[str] = (),
    types: tuple[type[nn.Module], ...] = PRUNABLE_TYPES,
) -> int:
    """Mask the zero entries of the prunable weights (e.g. of a pruned model loaded from a checkpoint, whose masks
    were not saved) so that further training keeps them at zero; returns how many weights are masked."""
    masked = 0
    for fqn, module, weight in prunable_weights(model, filter_fn=filter_fn, ignore=ignore, types=types):
        mask = weight.detach() != 0
        set_mask(module, "weight", mask, fqn=fqn)
        masked += int(mask.numel() - mask.sum())
    return masked
