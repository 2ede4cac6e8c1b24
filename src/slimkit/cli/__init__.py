"""The ``slimkit`` command: argv -> configs -> public functions. Thin by design."""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Sequence

from slimkit.cli._registry import add_all_commands
from slimkit.core.errors import SlimkitError


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``slimkit prune: error: argument --ratio: ...``), exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="slimkit", description="Compress PyTorch networks.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_all_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad input, 1 other failure)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from slimkit import __version__

        print(__version__)
        return 0
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except SlimkitError as err:
        print(f"slimkit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file named on the command line that cannot be read or written
        where = f"{err.filename}: " if err.filename else ""
        print(f"slimkit {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = args.interrupted(args) if getattr(args, "interrupted", None) else "interrupted"
        print(f"slimkit {args.command}: {hint}", file=sys.stderr)
        return 130
