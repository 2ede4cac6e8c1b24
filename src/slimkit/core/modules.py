"""Walking and addressing modules by their fully qualified name (fqn), and targeting them with ``filter_fn``."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn

from slimkit.core.errors import ConfigError, GraphError

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


def module_names(model: nn.Module, entries: Iterable[str | nn.Module] | str | nn.Module, *,
                 field: str = "ignore") -> tuple[str, ...]:
    """Names for ``entries``: fqns or globs (kept as given) and module objects of ``model`` (every fqn they have).

    Raises:
        ConfigError: a name or glob matching no module of ``model`` (naming the close matches), a module object
            that is not a submodule of ``model`` (naming its type), or the model itself.
    """
    if isinstance(entries, (str, nn.Module)):
        entries = (entries,)
    fqns_of: dict[int, list[str]] = {}
    for fqn, module in model.named_modules(remove_duplicate=False):
        fqns_of.setdefault(id(module), []).append(fqn)
    names = [fqn for fqns in fqns_of.values() for fqn in fqns if fqn]
    model_name = type(model).__name__
    out: list[str] = []
    for entry in entries:
        if isinstance(entry, nn.Module):
            fqns = fqns_of.get(id(entry))
            if fqns is None:
                raise ConfigError(f"{field}: a {type(entry).__name__} that is not a submodule of {model_name}")
            if entry is model:
                raise ConfigError(f"{field}: the model itself ({model_name}); name the submodules to leave alone")
            out += fqns
        elif isinstance(entry, str):
            if entry and not any(matches_any(name, (entry,)) for name in names):
                close = difflib.get_close_matches(entry, names, n=3, cutoff=0.6)
                hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
                raise ConfigError(f"{field}: {entry!r} matches no module of {model_name}{hint}")
            out.append(entry)
        else:
            raise ConfigError(f"{field}: expected module names, globs or nn.Module objects, got "
                              f"{type(entry).__name__} {entry!r}")
    return tuple(dict.fromkeys(out))


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
