"""``slimkit prune MODEL_FILE --ratio 0.5 --out OUT``: remove channels from a saved model, save the smaller one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from slimkit.cli.inputs import add_factory_argument, check_importance, load_with_example


def _round_to(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'auto', got {text!r}") from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prune",
        help="remove channels from a saved model (structured pruning)",
        description="Prune a model file written by slimkit.models.save_model; the output loads with load_model.",
    )
    p.add_argument("model", help="a model file written by slimkit.models.save_model")
    add_factory_argument(p)
    p.add_argument("--out", required=True, help="where to write the pruned model")
    p.add_argument("--ratio", type=float, default=0.5, help="fraction of channels to remove (default 0.5)")
    p.add_argument("--importance", default="l1", help="l1, l2, fpgm, bn_scale, random, apoz (default l1)")
    p.add_argument("--scope", default="global", choices=["global", "local"], help="ranking scope (default global)")
    p.add_argument("--macs-reduction", type=float, default=None, help="prune until MACs fall by this factor")
    p.add_argument("--allow-partial", action="store_true",
                   help="when the budget cannot be met, keep the closest plan and warn instead of failing")
    p.add_argument("--round-to", type=_round_to, default=None,
                   help="keep channel counts at multiples of this; 'auto': what the latency device's kernels like")
    p.add_argument("--debias", action="store_true", help="score per weight element so wide layers do not dominate")
    p.add_argument("--attention", default="head_dims", choices=["head_dims", "heads"],
                   help="unit removed from nn.MultiheadAttention: the same dims in every head, or whole heads")
    p.add_argument("--latency-weight", type=float, default=0.0,
                   help="rank by importance / (CPU ms saved per MAC saved)**w: speed-first, the cut lands where "
                        "it buys time (default 0)")
    p.add_argument("--ignore", action="append", default=[], help="module name or glob to leave untouched (repeat)")
    p.add_argument("--input-size", type=str, default=None, help="input HxW for tracing (default 28 or 32)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from slimkit.cli.outputs import ensure_writable
    from slimkit.prune.structured import plan_pruning
    from slimkit.state import save_model

    if not args.dry_run:
        ensure_writable(args.out)
    check_importance(args.importance)
    model, x = load_with_example(args.model, args.input_size, args)
    example = (x,)
    options = {"ratio": args.ratio, "importance": args.importance, "scope": args.scope,
               "macs_reduction": args.macs_reduction, "round_to": args.round_to, "ignore": tuple(args.ignore),
               "allow_partial": args.allow_partial, "debias": args.debias, "attention": args.attention,
               "latency_weight": args.latency_weight}
    plan = plan_pruning(model, example, options)
    report = plan.report if args.dry_run else plan.apply()
    if not args.dry_run:
        save_model(model, Path(args.out), metadata={"pruned": {"macs_reduction": report.macs_reduction,
                                                               "params_reduction": report.params_reduction}})
    if args.json:
        print(json.dumps({"model": args.model, "out": None if args.dry_run else args.out, **report.to_dict()}))
    else:
        print(report.table())
        if not args.dry_run:
            print(f"wrote {args.out}")
    return 0
