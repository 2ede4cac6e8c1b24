"""Walking and addressing modules by their fully qualified name (fqn), and targeting them with ``filter_fn``."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn

from slimkit.core.errors import GraphError

FilterFn = Callable[[nn.Module, str], bool]


def label(fqn: str, module: nn.Module) -> str:
    """The way every error and report names a module: ``features.3 (Conv2d)``."""
    return f"{fqn or '<root>'} ({type(module).__name__})"


def get_submodule(model: nn.Module, fqn: str) -> nn.Module:
    if not fqn:
        return model
    try:
        return model.get_submodule(fqn)
    except AttributeError:
        raise GraphError(f"{fqn}: no such submodule in {type(model).__name__}") from None


def set_submodule(model: nn.Module, fqn: str, new: nn.Module) -> None:
    """Replace the submodule at ``fqn`` (e.g. a Linear by a low-rank Sequential)."""
    if not fqn:
        raise GraphError("cannot replace the root module in place")
    parent_name, _, child = fqn.rpartition(".")
    parent = get_submodule(model, parent_name)
    setattr(parent, child, new)


def matches_any(fqn: str, patterns: Iterable[str]) -> bool:
    """True when ``fqn`` equals a pattern, sits under it, or matches it as a glob (``layer*.conv1``)."""
    for pattern in patterns:
        if fqn == pattern or fqn.startswith(pattern + ".") or fnmatch.fnmatchcase(fqn, pattern):
            return True
    return False


def iter_modules(
    model: nn.Module,
    types: type | tuple[type, ...] = nn.Module,
    *,
    filter_fn: FilterFn | None = None,
    ignore: Iterable[str] = (),
) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(fqn, module)`` of the given types that pass ``filter_fn`` and are not under ``ignore``."""
    ignore = tuple(ignore)
    for fqn, module in model.named_modules():
        if not isinstance(module, types):
            continue
        if ignore and matches_any(fqn, ignore):
            continue
        if filter_fn is not None and not filter_fn(module, fqn):
            continue
        yield fqn, module


def model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def count_params(model: nn.Module, *, nonzero: bool = False) -> int:
    """Parameters counted once even when shared (tied weights)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += int(torch.count_nonzero(p)) if nonzero else p.numel()
    return total
