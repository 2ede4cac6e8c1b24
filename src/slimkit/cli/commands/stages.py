"""``slimkit stages``: list the recipe stage types and their options (with defaults)."""

from __future__ import annotations

import argparse
import dataclasses
import enum


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("stages", help="list recipe stage types and their options")
    p.add_argument("stage", nargs="?", help="show only this stage type")
    p.set_defaults(run=run)


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = field.default_factory()  # type: ignore[misc]
    else:
        return "(required)"
    return repr(value.value if isinstance(value, enum.Enum) else value)


def describe_stages(only: str | None = None) -> str:
    """Text reference of every registered stage: summary line and options with defaults."""
    from slimkit.recipe import load_stages

    registry = load_stages()
    names = [registry.get(only).name] if only else registry.names()
    out = []
    for name in names:
        stage = registry.get(name)
        config_doc = stage.config_cls.__doc__ or ""
        if config_doc.startswith(stage.config_cls.__name__ + "("):  # dataclass's generated signature
            config_doc = ""
        doc = (stage.run.__doc__ or config_doc).strip().splitlines()
        out.append(f"{name}{'  (compresses)' if stage.compresses else ''}: {doc[0] if doc else ''}")
        for field in dataclasses.fields(stage.config_cls):
            out.append(f"    {field.name} = {_default(field)}")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    print(describe_stages(args.stage))
    return 0
