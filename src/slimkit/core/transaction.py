"""All-or-nothing transforms: a model that a failed transform touched is restored exactly as it was."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class _Snapshot:
    """Per-module attribute dicts and tensor contents, enough to undo slicing, replacement and in-place edits."""

    def __init__(self, model: nn.Module, copy_data: bool = True) -> None:
        self.modules: list[tuple[nn.Module, dict, dict, dict, dict]] = []
        self.tensors: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = {}
        for module in model.modules():
            self.modules.append(
                (module, dict(module.__dict__), dict(module._parameters), dict(module._buffers), dict(module._modules))
            )
            for tensor in list(module._parameters.values()) + list(module._buffers.values()):
                if copy_data and tensor is not None and id(tensor) not in self.tensors:
                    grad = tensor.grad.detach().clone() if tensor.grad is not None else None
                    self.tensors[id(tensor)] = (tensor, tensor.detach().clone(), grad)

    def restore(self) -> None:
        for module, attrs, params, buffers, children in self.modules:
            module.__dict__.clear()
            module.__dict__.update(attrs)
            module.__dict__["_parameters"] = params
            module.__dict__["_buffers"] = buffers
            module.__dict__["_modules"] = children
        with torch.no_grad():
            for tensor, data, grad in self.tensors.values():
                tensor.data = data
                tensor.grad = grad


@contextlib.contextmanager
def transaction(model: nn.Module, *, replaces_only: bool = False) -> Iterator[None]:
    """Run the body; if it raises, put ``model`` back exactly as before and re-raise.

    ``replaces_only=True`` promises that the body swaps parameters/buffers for new tensors and sets attributes
    but never writes into an existing tensor (structured pruning slices into new tensors): then only references
    are kept, not copies of every weight, which saves a full copy of the model (tens of ms for a ResNet-50).

    Example:
        >>> with transaction(model):
        ...     slice_everything(model)   # any error here leaves model untouched
    """
    snapshot = _Snapshot(model, copy_data=not replaces_only)
    try:
        yield
    except BaseException:
        snapshot.restore()
        raise
