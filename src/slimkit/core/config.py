"""Typed, frozen config dataclasses that validate, serialize to plain dicts, and report bad fields by name.

Configs are ordinary ``@dataclass(frozen=True)`` classes; :func:`parse_config` turns a dict (from YAML or the CLI)
into one, with pydantic doing the type checking so that an error names the exact field, e.g.
``stages[2].ratio: Input should be a valid number``.

Numbers and switches are strict: an ``int`` field takes only an integer (not ``"1"``, ``true`` or ``1.0``), a
``float`` field an integer or a float (YAML's ``1`` is fine), a ``bool`` field only ``true``/``false``. A quoted
number in a recipe is a mistake to report, not a value to guess at.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import numbers
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

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
    _check_strict_fields(cls, data, prefix)
    try:
        return pydantic.TypeAdapter(cls).validate_python(data)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if not loc:  # a check of the whole config (__post_init__)
            raise ConfigError(_whole(cls, where, message, known)) from None
        raise ConfigError(f"{prefix}{loc}: {message} (got {first.get('input')!r})") from None
    except (ValueError, TypeError) as err:  # raised by __post_init__ checks
        raise ConfigError(_whole(cls, where, str(err), known)) from None


def _whole(cls: type, where: str, message: str, known: set[str]) -> str:
    """A ``__post_init__`` message under ``where``; one that starts with a field (``importance: ...``) is joined to
    it as a path (``stages[0] (prune).importance: ...``) so it names the field the way type errors do."""
    head, sep, rest = message.partition(": ")
    if where and sep and head in known:
        return f"{where}.{head}: {rest}"
    return f"{where or cls.__name__}: {message}"


_SCALARS: dict[Any, str] = {bool: "true or false", int: "an integer", float: "a number"}


def _arms(annotation: Any) -> list[Any]:
    """The alternatives of a type: ``int | Literal["auto"] | None`` -> ``[int, Literal["auto"], NoneType]``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _arms(typing.get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [arm for alternative in typing.get_args(annotation) for arm in _arms(alternative)]
    return [annotation]


def _fits(value: Any, arm: Any) -> bool:
    """Whether ``value`` is of ``arm``'s kind without conversion (True for kinds pydantic alone judges)."""
    if arm is bool:
        return isinstance(value, bool)
    if arm is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if arm is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if arm is type(None):
        return value is None
    if arm is str:
        return isinstance(value, str)
    if typing.get_origin(arm) is Literal:
        return any(value == choice and type(value) is type(choice) for choice in typing.get_args(arm))
    if isinstance(arm, type) and issubclass(arm, enum.Enum):
        return isinstance(value, arm) or any(value == m.value and type(value) is type(m.value) for m in arm)
    origin = typing.get_origin(arm)
    if origin in (tuple, list, set, frozenset):
        return isinstance(value, (list, tuple, set, frozenset))
    if origin is dict:
        return isinstance(value, Mapping)
    return True


def _describe(arm: Any) -> str:
    if arm in _SCALARS:
        return _SCALARS[arm]
    if arm is type(None):
        return "null"
    if arm is str:
        return "a string"
    if typing.get_origin(arm) is Literal:
        return " or ".join(repr(choice) for choice in typing.get_args(arm))
    if isinstance(arm, type) and issubclass(arm, enum.Enum):
        return " or ".join(repr(m.value) for m in arm)
    return "a list" if typing.get_origin(arm) in (tuple, list, set, frozenset) else "a mapping"


def _check_strict(value: Any, annotation: Any, loc: str) -> None:
    """Refuse a string, a bool or a float where only an int/float/bool fits, anywhere inside ``value``."""
    arms = _arms(annotation)
    fitting = [arm for arm in arms if _fits(value, arm)]
    if not fitting:
        if any(arm in _SCALARS for arm in arms):
            expected = list(dict.fromkeys(_describe(arm) for arm in arms))
            expected_text = ", ".join(expected[:-1]) + f" or {expected[-1]}" if len(expected) > 1 else expected[0]
            raise ConfigError(f"{loc}: expected {expected_text}, got {value!r} ({type(value).__name__})")
        return  # pydantic's own message says what is wrong
    arm = fitting[0]
    origin, args = typing.get_origin(arm), typing.get_args(arm)
    if origin in (tuple, list, set, frozenset) and args and isinstance(value, (list, tuple)):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            pairs = list(zip(value, args))
        else:
            pairs = [(item, args[0]) for item in value]
        for i, (item, item_type) in enumerate(pairs):
            _check_strict(item, item_type, f"{loc}[{i}]")
    elif origin is dict and len(args) == 2 and isinstance(value, Mapping):
        for key, item in value.items():
            _check_strict(item, args[1], f"{loc}[{key!r}]")
    elif isinstance(arm, type) and dataclasses.is_dataclass(arm) and isinstance(value, Mapping):
        _check_strict_fields(arm, value, f"{loc}.")


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:  # noqa: BLE001 - an annotation that cannot be resolved: pydantic alone judges the class
        return {}
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name in hints}


def _check_strict_fields(cls: type, data: Mapping[str, Any], prefix: str) -> None:
    types_of = _field_types(cls)
    for name, value in data.items():
        if name in types_of:
            _check_strict(value, types_of[name], f"{prefix}{name}")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (enums become their values, tuples lists)."""

    def plain(value: Any) -> Any:
        own = getattr(value, "__config_dict__", None)  # a config with its own spelling (an importance criterion)
        if callable(own) and not isinstance(value, type):
            return plain(own())
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
