"""The example input every model-file command builds: channels from the model's spec, size from ``--input-size``."""

from __future__ import annotations

import argparse
import os
from typing import Any

import torch
from torch import nn

from slimkit.cli.from_config import config_from_flags  # noqa: F401  (commands import it from here too)
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


def add_factory_argument(parser: argparse.ArgumentParser) -> None:
    """``--factory PKG.MOD:FN``: the user names the code that builds the architecture; a file never does."""
    parser.add_argument(
        "--factory", metavar="PKG.MOD:FN",
        help="build the saved model's architecture with this function (for your own models; slimkit never "
             "imports code named inside a file). The file's keyword arguments are passed to it.",
    )


def open_model(path: str | os.PathLike, args: argparse.Namespace) -> nn.Module:
    """The model saved at ``path``, its architecture built by ``--factory`` when the user gave one."""
    from slimkit.models._registry import resolve_factory
    from slimkit.state import load_model

    name = getattr(args, "factory", None)
    return load_model(path, factory=resolve_factory(name) if name else None)


def load_with_example(path: str, size_text: str | None,
                      args: argparse.Namespace | None = None) -> tuple[nn.Module, torch.Tensor]:
    """A saved model (eval mode) and a random batch-1 input for it: its spec's channels, ``--input-size``.

    Raises:
        ConfigError: the model does not run on that input (e.g. ``--input-size 2`` for a 5x5 kernel).
    """
    model = open_model(path, args or argparse.Namespace()).eval()
    in_channels = spec_in_channels(model)
    h, w = input_size(size_text, in_channels)
    x = torch.randn(1, in_channels, h, w)
    check_forward(model, (x,), flag="--input-size", source=size_text or f"{h}x{w} (the default)")
    return model, x


def data_example(data: Any) -> tuple[torch.Tensor, ...]:
    """A batch-1 input from a dataset's training split."""
    x, _ = data.train[0]
    return (x.unsqueeze(0),)


def check_forward(model: nn.Module, inputs: tuple[torch.Tensor, ...], *, flag: str, source: str) -> None:
    """Run ``model`` once on ``inputs``; a model that does not fit them fails as a ConfigError naming ``flag``
    (``--input-size 2``, ``--data cifar10``) instead of a traceback from deep inside the model."""
    from slimkit.recipe.build import check_model_runs

    check_model_runs(model, inputs, where=f"{flag} {source}")
