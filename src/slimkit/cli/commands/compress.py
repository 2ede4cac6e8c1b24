"""``slimkit compress RECIPE.yaml``: run a recipe's stages in a run folder and print the before/after table."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("compress", help="run a recipe (train, prune, quantize, ... stages)")
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("--run-dir", help="run folder (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last finished stage")
    p.add_argument("--overwrite", action="store_true",
                   help="empty a non-empty run folder that slimkit created (never the current directory, home, "
                   "or a folder holding the recipe)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set stages.0.epochs=1 (repeatable)")
    p.add_argument("--check", action="store_true",
                   help="check everything a run could fail on before its first stage (recipe, data, model, every "
                        "stage's names against the model, the run folder), run nothing")
    p.set_defaults(run=run, interrupted=interrupted)


def interrupted(args: argparse.Namespace) -> str:
    return "interrupted; run the same command with --resume to continue from the last finished stage or epoch"


def run(args: argparse.Namespace) -> int:
    from slimkit.cli.outputs import ensure_writable
    from slimkit.recipe import load_recipe, run_recipe
    from slimkit.recipe.runner import preflight

    recipe = load_recipe(args.recipe, overrides=args.set)
    run_dir = Path(args.run_dir or Path("runs") / recipe.name)
    if args.check:
        ensure_writable(run_dir, flag="--run-dir", folder=True)
        checked = preflight(recipe, run_dir, resume=args.resume, overwrite=args.overwrite, recipe_path=args.recipe)
        if checked.manifest is not None:
            plan = f"resumes {run_dir} at stage {checked.start + 1} of {len(recipe.stages)}"
        else:
            plan = f"runs in {run_dir}"
        print(f"{args.recipe}: valid ({len(recipe.stages)} stages: {', '.join(s.name for s in recipe.stages)}); {plan}")
        return 0
    ensure_writable(run_dir, flag="--run-dir", folder=True)
    result = run_recipe(recipe, run_dir, resume=args.resume, overwrite=args.overwrite, recipe_path=args.recipe)
    if result.run_dir == run_dir:  # rank 0 (or a single process) owns the console
        print(f"run folder: {run_dir}")
    return 0
