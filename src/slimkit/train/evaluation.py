"""Accuracy and loss of a classifier on a dataset, and the small batch helpers training shares with it."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.core.errors import DataError
from slimkit.core.forward import training_mode  # noqa: F401  (its home before core.forward)
from slimkit.core.modules import model_device
from slimkit.data.loader import Loader, make_loader


def forward(model: nn.Module, inputs: Any) -> Any:
    """``model(*inputs)`` for a tuple/list of inputs, ``model(inputs)`` otherwise."""
    return model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs)


def to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, (tuple, list)):
        return type(value)(to_device(v, device) for v in value)
    return value


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Mixed-precision context for ``amp`` (``off``, ``bf16``, ``fp16``)."""
    if amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def as_loader(data: Any, *, batch_size: int, shuffle: bool = False, seed: int = 0, **kwargs: Any) -> Loader:
    """``data`` itself when it is already a :class:`Loader`, else a loader over the dataset."""
    if isinstance(data, Loader):
        return data
    return make_loader(data, batch_size=batch_size, shuffle=shuffle, seed=seed, **kwargs)


def classification_sums(
    model: nn.Module, loader: Loader, device: torch.device, *, amp: str = "off"
) -> tuple[float, int, int]:
    """``(summed cross-entropy, correct predictions, samples)`` of ``model`` over ``loader``, without grad."""
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    samples = 0
    with torch.no_grad(), training_mode(model, False):
        for inputs, targets in loader:
            inputs, targets = to_device(inputs, device), targets.to(device, non_blocking=True)
            with autocast(device, amp):
                outputs = forward(model, inputs)
            outputs = outputs.float()
            loss_sum += F.cross_entropy(outputs, targets, reduction="sum").double()
            correct += (outputs.argmax(dim=1) == targets).sum()
            samples += int(targets.shape[0])
    return float(loss_sum), int(correct), samples


def evaluate(
    model: nn.Module, data: Any, *, device: str | torch.device | None = None, batch_size: int = 256
) -> dict[str, float]:
    """Top-1 accuracy and mean cross-entropy of a classifier on ``data``.

    The model is put in eval mode for the pass and every submodule's mode restored afterwards.

    Args:
        model: a classifier returning ``(N, C)`` logits.
        data: a dataset of ``(x, y)`` or a loader from :func:`slimkit.data.make_loader`.
        device: where to run; None = where the model's parameters are. The model is moved there.
        batch_size: evaluation batch size.

    Returns:
        ``{"accuracy": float in [0, 1], "loss": mean cross-entropy, "samples": int}``.

    Raises:
        DataError: when ``data`` is empty.
    """
    device = torch.device(device) if device is not None else model_device(model)
    model.to(device)
    loss_sum, correct, samples = classification_sums(model, as_loader(data, batch_size=batch_size), device)
    if samples == 0:
        raise DataError("evaluate: the dataset is empty")
    return {"accuracy": correct / samples, "loss": loss_sum / samples, "samples": samples}
