"""Running a model under control: its train/eval flags for one block, and hooks around every module's forward.

These are the one spelling of two things many passes need (tracing, the check forward after pruning, calibration,
measuring): :func:`training_mode` instead of saving and restoring ``model.training`` by hand, and
:func:`module_hooks` / :func:`module_stack` instead of registering and removing pre/post hooks on every module.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

from torch import nn

from slimkit.core.modules import label

Enter = Callable[[str, nn.Module, tuple, dict], None]
Leave = Callable[[str, nn.Module, tuple, dict, Any], None]


@contextlib.contextmanager
def training_mode(model: nn.Module, mode: bool) -> Iterator[None]:
    """Set train/eval mode for the body, then restore every submodule's own flag (frozen BN stays frozen).

    Modules the body adds (a quantizer, a factored layer) take the model's restored flag, as ``model.train(was)``
    would give them.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.train(mode)
    try:
        yield
    finally:
        model.train(flags[0][1])
        for m, flag in flags:
            m.training = flag


def _enter(enter: Enter, fqn: str, module: nn.Module, args: tuple, kwargs: dict) -> None:
    enter(fqn, module, args, kwargs)


def _leave(leave: Leave, fqn: str, module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
    leave(fqn, module, args, kwargs, out)


@contextlib.contextmanager
def module_hooks(model: nn.Module, enter: Enter, leave: Leave) -> Iterator[None]:
    """Within the body, call ``enter(fqn, module, args, kwargs)`` before and ``leave(fqn, module, args, kwargs, out)``
    after the forward of ``model`` and each of its submodules; the hooks are removed afterwards.

    ``leave`` is not called for a forward that raises, so the innermost module entered and not left is the one
    that failed (what :func:`module_stack` reports).
    """
    handles = []
    try:
        for fqn, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(functools.partial(_enter, enter, fqn), with_kwargs=True))
            handles.append(module.register_forward_hook(functools.partial(_leave, leave, fqn), with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def module_stack(model: nn.Module) -> Iterator[list[str]]:
    """A list holding, while the body runs the model, the labels (``features.3 (Conv2d)``) of the modules whose
    forward is running, innermost last; after a forward fails, its last entry names the failing module."""
    stack: list[str] = []
    with module_hooks(model, lambda fqn, module, *_: stack.append(label(fqn, module)), lambda *_: stack.pop()):
        yield stack
