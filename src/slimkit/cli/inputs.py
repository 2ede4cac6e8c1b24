"""The example input every model-file command builds: channels from the model's spec, size from ``--input-size``."""

from __future__ import annotations

import torch
from torch import nn

from slimkit.core.errors import ConfigError


def input_size(text: str | None, in_channels: int) -> tuple[int, int]:
    """``--input-size`` as ``(H, W)`` from ``N`` or ``HxW``; default 28x28 for one channel (MNIST-like), else 32x32."""
    if text is None:
        return (28, 28) if in_channels == 1 else (32, 32)
    parts = text.lower().replace(",", "x").split("x")
    try:
        sizes = [int(p) for p in parts if p]
    except ValueError:
        raise ConfigError(f"--input-size: expected N or HxW, got {text!r}") from None
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise ConfigError(f"--input-size: expected N or HxW with positive sizes, got {text!r}")
    return sizes[0], sizes[-1]


def spec_in_channels(model: nn.Module) -> int:
    """Input channels recorded in the model's build spec (1 when it names none)."""
    spec = getattr(model, "slimkit_spec", None) or {}
    return int(spec.get("kwargs", {}).get("in_channels", 1))


def load_with_example(path: str, size_text: str | None) -> tuple[nn.Module, torch.Tensor]:
    """A saved model (eval mode) and a random batch-1 input for it: its spec's channels, ``--input-size``."""
    from slimkit.models import load_model

    model = load_model(path).eval()
    in_channels = spec_in_channels(model)
    h, w = input_size(size_text, in_channels)
    return model, torch.randn(1, in_channels, h, w)
