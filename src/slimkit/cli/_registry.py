"""CLI subcommands: one module per command under ``slimkit/cli/commands/``, each defining ``add_parser``.

A command module looks like::

    def add_parser(subparsers):
        p = subparsers.add_parser("prune", help="remove channels from a saved model")
        p.add_argument("model")
        p.set_defaults(run=run)

    def run(args) -> int:
        ...
        return 0

``main`` imports every module there, so adding a command edits no shared file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil


def add_all_commands(subparsers: argparse._SubParsersAction) -> None:
    import slimkit.cli.commands as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        module.add_parser(subparsers)
