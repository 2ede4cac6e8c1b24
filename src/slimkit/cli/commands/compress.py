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
    p.add_argument("--check", action="store_true", help="validate the recipe and data, run nothing")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from slimkit.recipe import load_recipe, run_recipe
    from slimkit.recipe.build import build_data

    recipe = load_recipe(args.recipe, overrides=args.set)
    if args.check:
        build_data(recipe.data, seed=recipe.seed)
        print(f"{args.recipe}: valid ({len(recipe.stages)} stages: {', '.join(s.name for s in recipe.stages)})")
        return 0
    run_dir = Path(args.run_dir or Path("runs") / recipe.name)
    result = run_recipe(recipe, run_dir, resume=args.resume, overwrite=args.overwrite, recipe_path=args.recipe)
    if result.run_dir == run_dir:  # rank 0 (or a single process) owns the console
        print(f"run folder: {run_dir}")
    return 0
