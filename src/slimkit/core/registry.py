"""Registries: the single extension mechanism (models, stages, criteria, layer and op handlers, quantizers).

A registry is keyed by name (case-insensitive unless told otherwise: ``"l1"``, ``"prune"``) or by an object: a layer or config type
(looked up along the MRO with :meth:`Registry.for_type`, so a subclass of ``nn.Conv2d`` finds conv's entry) or an
operator (``torch.ops.aten.mm``). It also reads as a mapping (``key in r``, ``r[key]``, ``r.get(key, default)``,
``r.items()``; ``r[key] = obj`` replaces an entry), so code and tests written against the dicts it replaced work.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, TypeVar

from slimkit.core.errors import ConfigError

T = TypeVar("T")
_MISSING: Any = object()


def _describe(key: Hashable) -> str:
    return key if isinstance(key, str) else getattr(key, "__qualname__", None) or str(key)


class Registry(Generic[T]):
    """A named table of objects with a decorator to add to it.

    Example:
        >>> criteria = Registry("importance")
        >>> @criteria.register("l1")
        ... def l1(weight): return weight.abs().sum()
        >>> criteria.get("l1") is l1
        True
    """

    def __init__(self, kind: str, *, casefold: bool = True, discover: str | None = None) -> None:
        """``casefold=False`` keeps names as given (operator names: ``T`` and ``t`` differ). ``discover``: a package
        whose modules are imported on the first read, so an entry in a new file there needs no list naming it."""
        self.kind = kind
        self.casefold = casefold
        self.discover = discover
        self._items: dict[Hashable, T] = {}

    @property
    def _table(self) -> dict[Hashable, T]:
        """The entries, after importing ``discover``'s modules once (their registrations add to ``_items``)."""
        if self.discover is not None:
            import importlib
            import pkgutil

            package, self.discover = importlib.import_module(self.discover), None
            for info in pkgutil.iter_modules(package.__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{package.__name__}.{info.name}")
        return self._items

    def _key(self, name: Hashable) -> Hashable:
        return name.lower() if self.casefold and isinstance(name, str) else name

    def register(self, *names: Hashable, overwrite: bool = False) -> Callable[[T], T]:
        """Decorator adding the object under each of ``names`` (several layer types may share one handler)."""

        def add(obj: T) -> T:
            for name in names:
                self.add(name, obj, overwrite=overwrite)
            return obj

        return add

    def add(self, name: Hashable, obj: T, *, overwrite: bool = False) -> None:
        key = self._key(name)
        if key in self._items and not overwrite:
            raise ConfigError(f"{self.kind} {_describe(name)!r} is already registered")
        self._items[key] = obj

    def get(self, name: Hashable, default: Any = _MISSING) -> T:
        """The entry of ``name``; ``default`` when given and there is none, else ConfigError listing the names."""
        try:
            return self._table[self._key(name)]
        except KeyError:
            if default is not _MISSING:
                return default
            raise ConfigError(
                f"unknown {self.kind} {_describe(name)!r}; choose one of: {', '.join(self.names()) or '(none)'}"
            ) from None

    def for_type(self, cls: type, default: Any = None) -> T:
        """The entry of ``cls`` or of its nearest base class registered (``default`` when none is)."""
        for base in cls.__mro__:
            if base in self._table:
                return self._table[base]
        return default

    def remove(self, name: Hashable) -> None:
        """Forget ``name`` (e.g. a model registered only for one test)."""
        self._items.pop(self._key(name), None)

    def names(self) -> list[str]:
        """Every key, sorted, as text (a type by its qualified name)."""
        return sorted(_describe(key) for key in self._table)

    def items(self) -> list[tuple[Hashable, T]]:
        return list(self._table.items())

    def __contains__(self, name: object) -> bool:
        try:
            return self._key(name) in self._table  # type: ignore[arg-type]
        except TypeError:  # unhashable
            return False

    def __getitem__(self, name: Hashable) -> T:
        return self._table[self._key(name)]

    def __setitem__(self, name: Hashable, obj: T) -> None:
        self.add(name, obj, overwrite=True)

    def __delitem__(self, name: Hashable) -> None:
        del self._items[self._key(name)]

    def __iter__(self) -> Iterator[Hashable]:
        return iter(sorted(self._table, key=_describe))

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"
