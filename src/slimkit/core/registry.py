"""Name -> object registries: the single extension mechanism (models, stages, criteria, layer handlers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from slimkit.core.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of objects with a decorator to add to it.

    Example:
        >>> criteria = Registry("importance")
        >>> @criteria.register("l1")
        ... def l1(weight): return weight.abs().sum()
        >>> criteria.get("l1") is l1
        True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]:
        def add(obj: T) -> T:
            self.add(name, obj, overwrite=overwrite)
            return obj

        return add

    def add(self, name: str, obj: T, *, overwrite: bool = False) -> None:
        key = name.lower()
        if key in self._items and not overwrite:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._items[key] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name.lower()]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(sorted(self._items)) or '(none)'}"
            ) from None

    def remove(self, name: str) -> None:
        """Forget ``name`` (e.g. a model registered only for one test)."""
        self._items.pop(name.lower(), None)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)
