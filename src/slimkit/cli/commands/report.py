"""``slimkit report RUN_DIR``: (re)write a run folder's ``report.html`` and plots from what the run recorded."""

from __future__ import annotations

import argparse

from slimkit.cli.inputs import add_factory_argument


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="write a recipe run's report.html (before/after table, plots)")
    p.add_argument("run_dir", help="a run folder written by slimkit compress")
    add_factory_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from slimkit.models._registry import resolve_factory
    from slimkit.report import write_html_report

    factory = resolve_factory(args.factory) if args.factory else None
    print(write_html_report(args.run_dir, factory=factory))
    return 0
