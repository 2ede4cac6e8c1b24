"""Typed, frozen config dataclasses that validate, serialize to plain dicts, and report bad fields by name.

Configs are ordinary ``@dataclass(frozen=True)`` classes; :func:`parse_config` turns a dict (from YAML or the CLI)
into one, with pydantic doing the type checking so that an error names the exact field, e.g.
``stages[2].ratio: Input should be a valid number``.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, TypeVar

import pydantic

from slimkit.core.errors import ConfigError

C = TypeVar("C")


def parse_config(cls: type[C], data: Any, *, where: str = "") -> C:
    """Build a config of type ``cls`` from a mapping, or raise :class:`ConfigError` naming the bad field.

    Args:
        cls: a dataclass type.
        data: a mapping (or an instance of ``cls``, returned as is; ``None`` gives the defaults).
        where: a prefix for error messages, e.g. ``"stages[2] (prune)"``.
    """
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    prefix = f"{where}." if where else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping of options, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{prefix}{unknown[0]}: unknown option for {cls.__name__}; known options: {', '.join(sorted(known))}"
        )
    try:
        return pydantic.TypeAdapter(cls).validate_python(data)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if not loc:  # a check of the whole config (__post_init__)
            raise ConfigError(f"{where or cls.__name__}: {message}") from None
        raise ConfigError(f"{prefix}{loc}: {message} (got {first.get('input')!r})") from None
    except (ValueError, TypeError) as err:  # raised by __post_init__ checks
        raise ConfigError(f"{where or cls.__name__}: {err}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (enums become their values, tuples lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    return plain(config)


def check_ratio(name: str, value: float | None, *, allow_one: bool = False) -> None:
    """Raise ValueError unless ``value`` is a ratio in [0, 1) (or [0, 1] with ``allow_one``)."""
    if value is None:
        return
    upper_ok = value <= 1.0 if allow_one else value < 1.0
    if not (0.0 <= value and upper_ok):
        raise ValueError(f"{name} must be in [0, {'1]' if allow_one else '1)'}, got {value}")
