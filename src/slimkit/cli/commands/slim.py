"""``slimkit slim MODEL_FILE --data fashion_mnist --ratio 0.5 --out OUT``: network slimming of a saved model
(sparsity training on BN scales, global threshold, removal, fine-tuning); plots go to --out-dir."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from slimkit.cli.from_config import add_config_arguments, config_from_args
from slimkit.cli.inputs import add_factory_argument, check_forward, open_model
from slimkit.prune.methods.slimming import SlimmingConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("slim", help="network slimming of a saved model with BatchNorm",
                              description="L1 sparsity training on BN scales, a global |gamma| threshold, channel "
                                          "removal and fine-tuning (Liu et al., 2017).")
    p.add_argument("model", help="a model file written by slimkit.state.save_model")
    add_factory_argument(p)
    p.add_argument("--out", required=True, help="where to save the slimmed model")
    p.add_argument("--data", default="fashion_mnist", help="dataset name (default fashion_mnist)")
    p.add_argument("--subset", type=int, default=None, help="use only N samples per split (quick runs)")
    add_config_arguments(p, SlimmingConfig, exclude=("sparsity_train", "finetune"))  # built from the flags below
    p.add_argument("--sparsity-epochs", type=int, default=10, help="epochs of sparsity training (0: none)")
    p.add_argument("--finetune-epochs", type=int, default=5, help="epochs of fine-tuning per pass (0: none)")
    p.add_argument("--lr", type=float, default=0.05,
                   help="learning rate of the sparsity training (fine-tuning uses a fifth of it; default 0.05)")
    p.add_argument("--batch-size", type=int, default=128, help="samples per step (default 128)")
    p.add_argument("--out-dir", default=None, help="where the gamma histogram and channel bars go")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from slimkit.cli.outputs import ensure_writable
    from slimkit.data import load_dataset
    from slimkit.prune.methods.slimming import network_slimming
    from slimkit.state import save_model

    train = {"lr": args.lr, "batch_size": args.batch_size}
    config = config_from_args(
        SlimmingConfig, args,
        sparsity_train={**train, "epochs": args.sparsity_epochs} if args.sparsity_epochs > 0 else None,
        finetune={**train, "epochs": args.finetune_epochs, "lr": args.lr / 5} if args.finetune_epochs > 0 else None)
    ensure_writable(args.out)
    if args.out_dir:
        ensure_writable(args.out_dir, flag="--out-dir", folder=True)
    data = load_dataset(args.data, subset=args.subset)
    model = open_model(args.model, args)
    example = (torch.zeros(1, data.in_channels, *data.image_size),)
    check_forward(model, example, flag="--data", source=args.data)
    report = network_slimming(model, example, data.train, config, val_data=data.val, plot_dir=args.out_dir)
    model.cpu()
    save_model(model, Path(args.out), metadata={"slimmed": {"channels_pruned": report.channels_pruned,
                                                            "macs_reduction": report.macs_reduction}})
    if args.json:
        print(json.dumps({"out": args.out, **report.to_dict()}))
    else:
        print(f"channels {report.channels_before} -> {report.channels_after} ({100 * report.channels_pruned:.1f}% "
              f"removed); MACs {report.macs_reduction:.2f}x; val accuracy {report.accuracy_before} -> "
              f"{report.accuracy_after}; wrote {args.out}")
    return 0
