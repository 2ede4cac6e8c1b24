"""``slimkit sensitivity MODEL_FILE --data fashion_mnist --out-dir DIR``: accuracy vs ratio per layer, and
optionally prune with the derived per-layer ratios (``--max-drop`` or ``--macs-reduction`` with ``--out``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from slimkit.cli.inputs import add_factory_argument, check_forward, open_model
from slimkit.core.errors import ConfigError
from slimkit.prune.importance import CRITERIA


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sensitivity", help="per-layer pruning sensitivity (accuracy vs ratio) of a saved model",
                              description="Prune each layer alone at a sweep of ratios and evaluate on the "
                                          "validation split; writes sensitivity.png/json to --out-dir.")
    p.add_argument("model", help="a model file written by slimkit.state.save_model")
    add_factory_argument(p)
    p.add_argument("--data", default="fashion_mnist", help="dataset name (default fashion_mnist)")
    p.add_argument("--subset", type=int, default=None, help="use only N samples per split (quick runs)")
    p.add_argument("--ratios", default="0.1,0.3,0.5,0.7,0.9", help="comma-separated sweep (default 0.1,...,0.9)")
    p.add_argument("--importance", default="l1", metavar="{" + ",".join(CRITERIA.names()) + "}",
                   help="a registered importance criterion (default l1)")
    p.add_argument("--out-dir", required=True, help="where the plot and the JSON report go")
    p.add_argument("--max-drop", type=float, default=None, help="prune every layer within this accuracy drop")
    p.add_argument("--macs-reduction", type=float, default=None, help="prune to this MACs factor")
    p.add_argument("--out", default=None, help="where to save the pruned model (with --max-drop/--macs-reduction)")
    p.add_argument("--recalibrate-batches", type=int, default=0,
                   help="re-estimate BatchNorm statistics of each trial on N training batches (default 0: off)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from slimkit.cli.outputs import ensure_writable
    from slimkit.core.io import atomic_write_json
    from slimkit.data import load_dataset
    from slimkit.prune.methods.sensitivity import sensitivity_analysis
    from slimkit.prune.structured import prune_channels
    from slimkit.state import save_model

    try:
        ratios = tuple(float(r) for r in args.ratios.split(","))
    except ValueError:
        raise ConfigError(f"--ratios: expected comma-separated numbers, got {args.ratios!r}") from None
    for ratio in ratios:
        if not 0.0 < ratio < 1.0:
            raise ConfigError(f"--ratios: every ratio must be in (0, 1), got {ratio:g}")
    if args.importance not in CRITERIA:
        raise ConfigError(f"--importance: unknown importance {args.importance!r}; choose one of: "
                          f"{', '.join(CRITERIA.names())}")
    if args.max_drop is not None and args.macs_reduction is not None:
        raise ConfigError("give at most one of --max-drop, --macs-reduction")
    if (args.max_drop is not None or args.macs_reduction is not None) != (args.out is not None):
        raise ConfigError("--out goes with --max-drop or --macs-reduction (the pruned model is written there)")
    ensure_writable(args.out_dir, flag="--out-dir", folder=True)
    if args.out is not None:
        ensure_writable(args.out)
    data = load_dataset(args.data, subset=args.subset)
    model = open_model(args.model, args).eval()
    example = (torch.zeros(1, data.in_channels, *data.image_size),)
    check_forward(model, example, flag="--data", source=args.data)
    out_dir = Path(args.out_dir)
    report = sensitivity_analysis(model, example, data.val, ratios=ratios, importance=args.importance,
                                  plot_path=out_dir / "sensitivity.png",
                                  recalibration_data=data.train if args.recalibrate_batches > 0 else None,
                                  recalibrate_batches=max(args.recalibrate_batches, 1))
    result = {"baseline_accuracy": report.baseline_accuracy, "ratios": report.ratios, "curves": report.curves}
    chosen = None
    if args.max_drop is not None:
        chosen = report.ratios_for_drop(args.max_drop)
    elif args.macs_reduction is not None:
        chosen = report.ratios_for_macs(macs_reduction=args.macs_reduction)
    if chosen is not None:
        pruned = prune_channels(model, example, ratio=0.0, scope="local", importance=args.importance, ratios=chosen)
        save_model(model, Path(args.out), metadata={"pruned": {"macs_reduction": pruned.macs_reduction,
                                                               "sensitivity_ratios": chosen}})
        result.update(applied_ratios=chosen, macs_reduction=pruned.macs_reduction, out=args.out)
    atomic_write_json(out_dir / "sensitivity.json", result)
    if args.json:
        print(json.dumps(result))
    else:
        print(report.table())
        if chosen is not None:
            print(f"pruned with per-layer ratios {chosen}: MACs {result['macs_reduction']:.2f}x; wrote {args.out}")
        print(f"plot: {out_dir / 'sensitivity.png'}")
    return 0
