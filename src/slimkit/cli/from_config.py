"""Command-line flags generated from a config dataclass, and the config parsed back from them.

A command calls :func:`add_config_arguments` with its config class and gets one flag per field: ``--field-name``
with the field's type, its names where it has a fixed set (an enum, a ``Literal``, or the field's metadata:
``{"registry": "pkg.mod:NAME"}``, ``{"choices": (...)}``) and the field's entry in the class docstring's
``Attributes:`` as help, so the CLI offers every option the API has and cannot drift from it.
:func:`config_from_args` builds the config from the flags the user gave (the others keep the config's defaults);
the config's own checks then judge the values, and an error names the flag (``--ratio: ratio must be in [0, 1)``).

Types map as follows: ``bool`` -> ``--flag`` / ``--no-flag``; an enum or ``Literal`` -> its names (listed by
``--help``, judged by the config); ``int``/``float``/``str`` -> that type; ``X | None`` -> X, or ``none``;
``tuple[X, ...]``/``list[X]`` -> a repeatable flag (numbers may also be comma-separated); ``dict[str, X]`` ->
repeatable ``KEY=VALUE``; a nested config -> ``--field.sub``. A field with ``{"flag": False}`` in its metadata has
none (it is set through other fields). Fields of other types (callables, modules) have no
flag: :func:`flag_fields` says which fields do.

A registry field whose entries are themselves configs (importance criteria: ``Taylor(batches=8)``) also gets
``--field-opt KEY=VALUE`` (repeatable) for the chosen entry's options: ``--importance taylor --importance-opt
batches=8``. Each value is read with the type of the entry's field, and the entry's own checks judge it; an unknown
key, a bad value or an option of an entry that takes none is a one-line ConfigError naming ``--field-opt``.

A ``dict`` field whose metadata says ``{"options_of": "other_field"}`` holds the options of the registry entry that
``other_field`` names (the quantize stage's ``options`` for its ``scheme``): its flag takes ``KEY=VALUE`` (repeatable;
``quant.percentile=99.9`` for a nested config's field), each value read with the type of that entry's config field
(``config_cls`` of the entry, or the entry itself when it is a config class). An unknown key, a key the entry's name
fixes or one that is a field of the command's config (it has its own flag) is a one-line ConfigError naming the flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import functools
import importlib
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, NamedTuple, TypeVar, Union

from slimkit.core.errors import ConfigError

C = TypeVar("C")
_NONE = "none"
_METAVARS = {int: "INT", float: "FLOAT", str: "TEXT"}
_DEST = "_config_flags"  # on the namespace: {config class: {dest: _Flag}}
_UNSET = object()
_BOOLS = {"true": True, "false": False}


class _Flag(NamedTuple):
    flag: str  # --field or --outer.field
    field: dataclasses.Field
    default: Any  # the command's own default, or _UNSET: the config's
    is_dict: bool  # KEY=VALUE pairs, made a dict
    options_dest: str | None = None  # where --field-opt KEY=VALUE pairs are (a registry of configs), else None
    options_of: tuple[str, type] | None = None  # an options_of field: (the naming field's dest, the owning config)


def field_docs(cls: type) -> dict[str, str]:
    """``field -> its description`` from the ``Attributes:`` sections of ``cls``'s docstring and its bases'."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if "__doc__" in vars(klass):
            docs.update(_attributes(klass.__doc__ or ""))
    return docs


def _attributes(text: str) -> dict[str, str]:
    """Entries of an ``Attributes:`` section: ``name: text`` (or ``a / b: text`` for two fields), continued by
    more deeply indented lines."""
    section = inspect.cleandoc(text).partition("Attributes:\n")[2]
    entries: list[tuple[list[str], list[str]]] = []
    for line in section.splitlines():
        if line and not line.startswith(" "):  # the next section (``Example:``) or the end of the block
            break
        entry = re.match(r"^ {4}([\w ,/]+?):\s(.*)$", line)
        if entry:
            entries.append((re.split(r"\s*[,/]\s*", entry[1]), [entry[2].strip()]))
        elif entries and line.strip():
            entries[-1][1].append(line.strip())
    return {name: " ".join(lines) for names, lines in entries for name in names}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _arms(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [arm for part in typing.get_args(annotation) for arm in _arms(part)]
    return [annotation]


def _choices_of(arm: Any) -> list[Any] | None:
    if typing.get_origin(arm) is Literal:
        return list(typing.get_args(arm))
    if isinstance(arm, type) and issubclass(arm, enum.Enum):
        return [member.value for member in arm]
    return None


def _registry(field: dataclasses.Field) -> Any:
    """The registry a field's metadata points at (``{"registry": "pkg.mod:NAME"}``), or None."""
    where = field.metadata.get("registry")
    if not where:
        return None
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)


def _entry_options(registry: Any) -> dict[str, list[str]] | None:
    """``entry name -> its option names`` when a registry's entries are config classes, else None."""
    entries = [(name, registry.get(name)) for name in registry.names()]
    if not entries or not all(isinstance(obj, type) and dataclasses.is_dataclass(obj) for _, obj in entries):
        return None
    return {name: [f.name for f in dataclasses.fields(obj)] for name, obj in entries}


def _entry_config(entry: Any) -> tuple[type, dict[str, Any]] | None:
    """The config class of a registry entry (the entry itself, or its ``config_cls``) and the fields its name fixes
    (``fixed``), or None when the entry is no config."""
    cls = entry if isinstance(entry, type) else getattr(entry, "config_cls", None)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return None
    return cls, dict(getattr(entry, "fixed", None) or {})


def _option_keys(cls: type, prefix: str = "") -> dict[str, Any]:
    """``option key -> annotation`` for every field of config ``cls``; a nested config's fields as ``outer.inner``."""
    keys: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        annotation = _hints(cls)[field.name]
        if len(_arms(annotation)) == 1 and dataclasses.is_dataclass(annotation):
            keys.update(_option_keys(annotation, f"{prefix}{field.name}."))
        else:
            keys[f"{prefix}{field.name}"] = annotation
    return keys


def _refused(keys: Iterable[str], fixed: Mapping[str, Any], name: str, own: Mapping[str, str | None]) -> dict[str, str]:
    """``key -> why it is no option``: fixed by the entry's name, or (by its last part) a field of the command's
    config, which has its own flag (``own``: field -> flag, None where the command offers none)."""
    why: dict[str, str] = {}
    for key in keys:
        last = key.rpartition(".")[2]
        if key in fixed:
            why[key] = f"set by the name {name!r} ({key}={getattr(fixed[key], 'value', fixed[key])})"
        elif last in own:
            why[key] = f"give it as {own[last]}" if own[last] else "not offered by this command"
    return why


def _option_converter(annotation: Any, flag: str) -> Callable[[str], Any] | None:
    """A converter for one option's text: a scalar, or comma-separated items for a tuple/list field."""
    arms = [arm for arm in _arms(annotation) if arm is not type(None)]
    if len(arms) == 1 and typing.get_origin(arms[0]) in (tuple, list, frozenset, set):
        args = typing.get_args(arms[0])
        convert = _scalar(_arms(args[0] if args else str), flag)
        return None if convert is None else _items(convert, split=True)
    return _scalar(_arms(annotation), flag)


def _read_options(name: str, keys: Mapping[str, Any], pairs: list[tuple[str, str]], flag: str,
                  refused: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``KEY=VALUE`` pairs of ``flag`` read with the types of ``keys`` (``key -> annotation``), as a mapping
    (``quant.percentile`` nested: ``{"quant": {"percentile": ...}}``).

    Raises:
        ConfigError: naming ``flag``: an unknown or refused key, one given twice, a value of the wrong type.
    """
    refused = refused or {}
    data: dict[str, Any] = {}
    seen: set[str] = set()
    for key, text in pairs:
        if key in refused:
            raise ConfigError(f"{flag}: {key}: {refused[key]}")
        if key not in keys:
            known = [k for k in keys if k not in refused]
            takes = f"its options: {', '.join(known)}" if known else "it takes none"
            raise ConfigError(f"{flag}: {name} has no option {key!r}; {takes}")
        if key in seen:
            raise ConfigError(f"{flag}: {key} is given twice")
        seen.add(key)
        convert = _option_converter(keys[key], flag)
        if convert is None:
            raise ConfigError(f"{flag}: {name}'s option {key} cannot be set from the command line")
        try:
            value = convert(text)
        except argparse.ArgumentTypeError as err:
            raise ConfigError(f"{flag}: {key}: {err}") from None
        *outer, last = key.split(".")
        target = data
        for part in outer:
            target = target.setdefault(part, {})
        target[last] = value
    return data


def _scalar(arms: list[Any], flag: str) -> Callable[[str], Any] | None:
    """A converter for text that tries each arm in turn (``int | Literal["auto"] | None``), or None if none fits."""
    kinds = [arm for arm in arms if arm in (int, float, str)]
    choices = [c for arm in arms for c in (_choices_of(arm) or [])]
    optional = type(None) in arms
    boolean = bool in arms
    if not kinds and not choices and not optional and not boolean:
        return None

    def convert(text: str) -> Any:
        if optional and text.lower() == _NONE:
            return None
        if boolean and text.lower() in _BOOLS:
            return _BOOLS[text.lower()]
        for choice in choices:
            if text == str(choice):
                return choice
        if not kinds and not boolean:  # names only: the config judges (a one-line ConfigError naming the field
            return text  # and the choices, and an enum's other spellings, e.g. "local" for "layer")
        for kind in kinds:
            try:
                return kind(text)
            except ValueError:
                continue
        expected = [{int: "a whole number", float: "a number", str: "text"}[k] for k in kinds]
        expected += ["true or false"] if boolean else []
        expected += [repr(c) for c in choices] + ([repr(_NONE)] if optional else [])
        raise argparse.ArgumentTypeError(f"expected {' or '.join(expected)}, got {text!r}")

    convert.__name__ = flag
    return convert


def _items(convert: Callable[[str], Any], split: bool) -> Callable[[str], list[Any]]:
    def items(text: str) -> list[Any]:
        return [convert(part) for part in (text.split(",") if split else [text])]

    return items


def _pair(convert: Callable[[str], Any]) -> Callable[[str], tuple[str, Any]]:
    def pair(text: str) -> tuple[str, Any]:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
        return key, convert(value)

    return pair


def _argument(field: dataclasses.Field, annotation: Any, flag: str) -> dict[str, Any] | None:
    """``add_argument`` keywords for one field (without ``help``/``dest``), or None when it takes no flag."""
    if field.metadata.get("flag") is False:  # set on the command line through other fields (its shorthands)
        return None
    if field.metadata.get("options_of"):  # read in config_from_args, once the entry they belong to is known
        return {"type": _pair(str), "action": "append", "metavar": "KEY=VALUE"}
    arms = [arm for arm in _arms(annotation) if arm is not type(None)]
    optional = len(arms) < len(_arms(annotation))
    registry = _registry(field)
    names = None if registry is None else registry.names()
    if names is None and "choices" in field.metadata:  # a field whose command-line spelling is one of these names
        names = list(field.metadata["choices"])
    if names is not None:  # checked by the config, or by config_from_args for a registry
        return {"metavar": "{" + ",".join(names) + "}"}
    if arms == [bool]:
        return {"action": argparse.BooleanOptionalAction}
    origin, args = typing.get_origin(arms[0]), typing.get_args(arms[0])
    if len(arms) == 1 and origin in (tuple, list, frozenset, set):
        variadic = origin is not tuple or (len(args) == 2 and args[1] is Ellipsis)
        item = args[0] if args else str
        convert = _scalar(_arms(item), flag)
        if convert is None:
            return None
        if not variadic:
            return {"type": convert, "nargs": len(args), "metavar": _METAVARS.get(item, "VALUE")}
        return {"type": _items(convert, split=item in (int, float)), "action": "extend",
                "metavar": _METAVARS.get(item, "VALUE")}
    if len(arms) == 1 and origin is dict:
        convert = _scalar(_arms(args[1]) if args else [str], flag)
        return None if convert is None else {"type": _pair(convert), "action": "append", "metavar": "KEY=VALUE"}
    convert = _scalar(arms + ([type(None)] if optional else []), flag)
    if convert is None:
        return None
    choices = [c for arm in arms for c in (_choices_of(arm) or [])]
    plain = [arm for arm in arms if arm in (int, float, str)]
    metavar = "{" + ",".join(map(str, choices)) + "}" if choices and not plain else None
    if choices and plain:
        metavar = "|".join([_METAVARS[plain[0]], *map(str, choices)])
    return {"type": convert, "metavar": metavar or _METAVARS.get(arms[0], "VALUE")}


def flag_fields(cls: type, *, exclude: Iterable[str] = ()) -> dict[str, tuple[str, ...]]:
    """``--flag -> field path`` for every field of ``cls`` that takes a flag (nested configs as ``--a.b``)."""
    return {flag: path for flag, path, owner, field in _flags(cls, tuple(exclude), "")
            if _argument(field, _hints(owner)[field.name], flag) is not None}


def _flags(cls: type, exclude: tuple[str, ...], prefix: str) -> list[tuple[str, tuple[str, ...], Any, Any]]:
    found = []
    hints = _hints(cls)
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        path = f"{prefix}{field.name}"
        if path in exclude or field.name.startswith("_"):
            continue
        annotation = hints[field.name]
        nested = [arm for arm in _arms(annotation) if dataclasses.is_dataclass(arm)]
        if nested and len(_arms(annotation)) == 1:
            for flag, sub, owner, sub_field in _flags(nested[0], exclude, f"{path}."):
                found.append((flag, (field.name, *sub), owner, sub_field))
            continue
        found.append(("--" + path.replace("_", "-"), (field.name,), cls, field))
    return found


def _default_text(field: dataclasses.Field, value: Any) -> str:
    if value is dataclasses.MISSING:
        if field.default_factory is dataclasses.MISSING:
            return "required"
        value = field.default_factory()
    if isinstance(value, enum.Enum):
        value = value.value
    if "choices" in field.metadata:  # an object the command line names by its kind (PerChannel -> per_channel)
        value = getattr(value, "kind", value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return _NONE if value is None else str(value) if value not in ((), {}, []) else "none"


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, exclude: Iterable[str] = (),
                         defaults: Mapping[str, Any] | None = None, title: str | None = None) -> None:
    """Add a flag for every field of config ``cls`` (but ``exclude``) to ``parser``; see the module docstring.

    Args:
        defaults: the command's own defaults where they differ from the config's (``{"epochs": 3}`` for a quick
            ``slimkit train``); shown by ``--help`` and used when the flag is not given.

    Unset flags stay ``None`` on the namespace, so :func:`config_from_args` passes only what the user gave.
    """
    defaults = dict(defaults or {})
    group = parser.add_argument_group(title or f"options of {cls.__name__} (the API's config)")
    docs: dict[type, dict[str, str]] = {}
    table = {}
    own = _own_flags(cls, tuple(exclude))
    for flag, path, owner, field in _flags(cls, tuple(exclude), ""):
        keywords = _argument(field, _hints(owner)[field.name], flag)
        if keywords is None:
            continue
        doc = docs.setdefault(owner, field_docs(owner)).get(field.name, field.name.replace("_", " "))
        doc = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc).replace("``", "")  # reST markup reads badly in a terminal
        dest = "__".join(path)
        shown = _default_text(field, defaults.get(".".join(path), field.default))
        help_text = f"{doc} (default: {shown})".replace("%", "%%")
        options_of = None
        if field.metadata.get("options_of"):
            naming = field.metadata["options_of"]
            options_of = ("__".join((*path[:-1], naming)), owner)
            help_text = (f"{doc} (repeatable KEY=VALUE, read with the option's type; by "
                         f"--{naming.replace('_', '-')}: {_options_listing(owner, naming, own)})").replace("%", "%%")
        group.add_argument(flag, dest=dest, default=None, help=help_text, **keywords)
        is_dict = any(typing.get_origin(arm) is dict for arm in _arms(_hints(owner)[field.name]))
        options = _entry_options(_registry(field)) if _registry(field) is not None else None
        options_dest = None
        if options is not None:
            options_dest = f"{dest}__opt"
            taking = {name: keys for name, keys in options.items() if keys}
            example = next((f", e.g. {flag} {name} {flag}-opt {keys[0]}=..." for name, keys in taking.items()), "")
            listed = "; ".join(f"{name}: {', '.join(keys)}" for name, keys in taking.items()) or "none yet"
            group.add_argument(f"{flag}-opt", dest=options_dest, default=None, action="append", metavar="KEY=VALUE",
                               type=_pair(str), help=f"an option of the chosen {flag.lstrip('-')} (repeatable)"
                               f"{example}; options by name: {listed}".replace("%", "%%"))
        table[dest] = _Flag(flag, field, defaults.get(".".join(path), _UNSET), is_dict, options_dest, options_of)
    parser.set_defaults(**{_DEST: {**(parser.get_default(_DEST) or {}), cls: table}})


def _own_flags(cls: type, exclude: tuple[str, ...]) -> dict[str, str | None]:
    """``field -> its flag`` for the top-level fields of ``cls`` (None where the command offers none)."""
    flags = {path[0]: flag for flag, path in flag_fields(cls, exclude=exclude).items() if len(path) == 1}
    return {f.name: flags.get(f.name) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


def _options_listing(owner: type, naming: str, own: Mapping[str, str | None]) -> str:
    """``name: its options; ...`` for every entry of the registry that field ``naming`` of ``owner`` names."""
    registry = _registry(next(f for f in dataclasses.fields(owner) if f.name == naming))  # type: ignore[arg-type]
    parts = []
    for name in registry.names():
        cls, fixed = _entry_config(registry.get(name)) or (None, {})
        if cls is None:
            continue
        keys = _option_keys(cls)
        refused = _refused(keys, fixed, name, own)
        settable = [k for k in keys if k not in refused and _option_converter(keys[k], naming) is not None]
        parts.append(f"{name}: {', '.join(settable) or 'none'}")
    return "; ".join(parts)


def config_from_args(cls: type[C], args: argparse.Namespace, **extra: Any) -> C:
    """The ``cls`` config of the flags the user gave (plus ``extra`` fields), checked by the config itself.

    Raises:
        ConfigError: naming the flag, e.g. ``--ratio: ratio must be in [0, 1), got 1.5``.
    """
    table: dict[str, _Flag] = getattr(args, _DEST, {}).get(cls, {})
    flags: dict[str, Any] = {}
    for dest, spec in table.items():
        value = getattr(args, dest, None)
        options = getattr(args, spec.options_dest, None) if spec.options_dest else None
        if spec.options_of is not None:
            if value:
                flags[spec.flag] = _options_of(table, args, spec, value)
            continue
        if value is None and spec.default is _UNSET and not options:
            continue
        value = (spec.field.default if spec.default is _UNSET else spec.default) if value is None else value
        _check_registry(spec.field, value, spec.flag)
        if options:
            value = _with_options(spec.field, value, options, f"{spec.flag}-opt")
        flags[spec.flag] = dict(value) if spec.is_dict and value is not None else value
    flags.update({f"--{name.replace('_', '-')}": value for name, value in extra.items()})
    return config_from_flags(cls, flags)


def _given(table: Mapping[str, _Flag], args: argparse.Namespace, dest: str, field: dataclasses.Field) -> Any:
    """The value of the field at ``dest``: the flag's, the command's default or the config's."""
    value = getattr(args, dest, None)
    spec = table.get(dest)
    if value is None and spec is not None and spec.default is not _UNSET:
        value = spec.default
    if value is None:
        value = field.default if field.default_factory is dataclasses.MISSING else field.default_factory()
    return value


def _options_of(table: Mapping[str, _Flag], args: argparse.Namespace, spec: _Flag,
                   pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The options (``KEY=VALUE`` pairs) of an ``options_of`` flag, read with the types of the config of the entry
    that the naming field chooses."""
    assert spec.options_of is not None
    naming_dest, owner = spec.options_of
    naming = next(f for f in dataclasses.fields(owner) if f.name == spec.field.metadata["options_of"])  # type: ignore[arg-type]
    name = _given(table, args, naming_dest, naming)
    naming_flag = table[naming_dest].flag if naming_dest in table else naming.name
    _check_registry(naming, name, naming_flag)
    cls, fixed = _entry_config(_registry(naming).get(name)) or (None, {})
    if cls is None:
        raise ConfigError(f"{spec.flag}: {name} takes no options")
    own = {f.name: next((s.flag for s in table.values() if s.field is f), None)
           for f in dataclasses.fields(owner)}  # type: ignore[arg-type]
    keys = _option_keys(cls)
    return _read_options(name, keys, pairs, spec.flag, _refused(keys, fixed, name, own))


def _check_registry(field: dataclasses.Field, value: Any, flag: str) -> None:
    """A registry-backed field names a registered entry (checked before any work: the config may not look)."""
    registry = _registry(field)
    if registry is not None and isinstance(value, str):
        try:
            registry.get(value)
        except ConfigError as err:
            raise ConfigError(f"{flag}: {err}") from None


def _with_options(field: dataclasses.Field, name: Any, pairs: list[tuple[str, str]], flag: str) -> Any:
    """The registry entry ``name`` (a config class) built with the ``KEY=VALUE`` options of ``flag``."""
    from slimkit.core.config import parse_config

    if not isinstance(name, str):
        raise ConfigError(f"{flag}: give the entry by name to set its options")
    cls = _registry(field).get(name)
    data = _read_options(name, _option_keys(cls), pairs, flag)
    try:
        return parse_config(cls, data)
    except ConfigError as err:
        raise ConfigError(f"{flag}: {str(err).removeprefix(f'{cls.__name__}: ')}") from None


def config_from_flags(cls: type[C], flags: dict[str, Any]) -> C:
    """A config built from command-line flags (``{"--lr": 0.1}`` fills field ``lr``, ``{"--quant.bits": 4}`` the
    field ``bits`` of the nested config ``quant``); an error names the flag.

    Raises:
        ConfigError: ``--lr: lr must be > 0, got -1.0``: the first flag the config's message is about.
    """
    from slimkit.core.config import parse_config

    data: dict[str, Any] = {}
    for flag, value in flags.items():
        *outer, name = _field(flag).split(".")
        target = data
        for part in outer:
            target = target.setdefault(part, {})
        target[name] = value
    try:
        return parse_config(cls, data)
    except ConfigError as err:
        text = str(err).removeprefix(f"{cls.__name__}: ")
        found = [(m.start(), flag) for flag in flags if (m := re.search(rf"\b{re.escape(_field(flag))}\b", text))]
        found += [(m.start(), flag) for flag in flags
                  if (m := re.search(rf"\b{re.escape(_field(flag).rpartition('.')[2])}\b", text))]
        found += [(m.start(), flag) for flag, value in flags.items() if isinstance(value, dict)
                  for key in value if (m := re.search(rf"\b{re.escape(str(key))}\b", text))]  # an option's key
        if not found:
            raise
        flag = min(found)[1]
        text = text.removeprefix(_field(flag) + ": ")
        raise ConfigError(f"{flag}: {text}") from None


def _field(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")
