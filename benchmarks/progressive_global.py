"""Progressive global pruning to an accuracy target vs uniform per-layer pruning, VGG-11-BN on Fashion-MNIST.

Dense training; target = dense validation accuracy minus ``--drop`` points. Both runs use the same loop
(``progressive_prune``: remove ``step`` of the remaining channels, fine-tune ``--finetune-epochs``, stop and roll back when
validation accuracy falls below the target) and differ only in the ranking: ``global`` (one ranking over all
layers of de-biased, per-group normalized L1 scores, ``step`` of all channels per round; with ``--per-macs``
scores per MAC saved and ``step`` of the MACs per round) or ``local`` (``step`` of the channels of every layer). The MACs
reduction each reaches at the target is the comparison at equal accuracy. Test accuracy is reported too.

    python benchmarks/progressive_global.py            # full Fashion-MNIST
    python benchmarks/progressive_global.py --quick    # 4000 training images, width 0.125 (CPU minutes)
    python benchmarks/progressive_global.py --smoke    # 128 images, width 0.125, 2 rounds of 1 epoch (seconds)

Last line: one JSON object with target_acc, final_acc, macs_reduction, uniform_macs_reduction.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
from _fmnist import add_common_args, train_dense
from _seeds import add_seeds_arg, seeded_result

import slimkit
import slimkit.prune.importance
from slimkit.prune.methods.progressive import progressive_prune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_seeds_arg(parser)
    parser.add_argument("--drop", type=float, default=1.0, help="allowed accuracy drop in points (target)")
    parser.add_argument("--step", type=float, default=0.1)
    parser.add_argument("--finetune-epochs", type=int, default=None, help="per round (default 2; 1 with --smoke)")
    parser.add_argument("--max-rounds", type=int, default=None, help="default 16 (at least 20 full); 2 with --smoke")
    parser.add_argument("--per-macs", action="store_true", help="global ranking of importance per MAC saved")
    parser.add_argument("--min-step", type=float, default=None,
                        help="back-off: a failed round is retried with half the step down to this (default step/4; "
                             "--min-step equal to --step: no back-off)")
    parser.add_argument("--importance", default="taylor",
                        help="channel criterion of every loop (default taylor, as progressive_prune; l1, l2, fpgm, "
                             "apoz, ...; data-driven ones get 4 training batches of 64)")
    parser.add_argument("--scopes", nargs="+", default=["auto", "local"], choices=["auto", "global", "local"],
                        help="loops run; the first is the method (macs_reduction), local the baseline (default: auto local)")
    parser.add_argument("--finetune-top", type=int, default=1,
                        help="scope auto: finalists fine-tuned per round, the most accurate on validation kept "
                             "(uniform always among them from 2)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the uniform loop unless listed in --scopes (its figures are null in the JSON)")
    parser.add_argument("--out-dir", default="runs/benchmarks/progressive_global")
    args = parser.parse_args()
    keys = ["acc_dense_test", "final_test_acc", "uniform_test_acc"]
    drops = {"acc_drop_points": ("acc_dense_test", "final_test_acc"),
             "uniform_acc_drop_points": ("acc_dense_test", "uniform_test_acc")}
    result = seeded_result(args, lambda seed: _run(args, seed), keys, drops)
    print(json.dumps(result))


def _run(args: argparse.Namespace, seed: int) -> dict:
    """One seed of the benchmark; returns its figures (main prints the seeds' means)."""
    q = args.quick
    width = 0.125 if q or args.smoke else 0.25
    if args.finetune_epochs is None:
        args.finetune_epochs = 1 if args.smoke else 2
    if args.smoke:
        epochs, rounds = 1, args.max_rounds or 2
    else:
        epochs, rounds = (4, args.max_rounds or 16) if q else (15, max(args.max_rounds or 16, 20))
    dense = train_dense(args, seed=seed, arch="vgg11_bn", width=width, epochs=epochs, lr=0.05, weight_decay=1e-4)
    data, model, x, base, subset = dense.data, dense.model, dense.example, dense.train, dense.subset
    val_dense, acc_dense = dense.acc_dense_val, dense.acc_dense
    target = val_dense - args.drop / 100
    batches = None
    if slimkit.prune.importance.criterion_needs(args.importance):
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(data.train), generator=gen)[:256].tolist()
        xs = torch.stack([data.train[i][0] for i in idx])
        ys = torch.tensor([int(data.train[i][1]) for i in idx])
        batches = [(xs[i:i + 64], ys[i:i + 64]) for i in range(0, 256, 64)]
    results = {}
    scopes = list(dict.fromkeys([*args.scopes] + ([] if args.no_baseline else ["local"])))
    for scope in scopes:
        m = copy.deepcopy(model)
        rep = progressive_prune(m, x, data.train, data.val, target_accuracy=target, step=args.step,
                                max_rounds=rounds, finetune={**base, "epochs": args.finetune_epochs, "lr": 0.02}, scope=scope,
                                per_macs=args.per_macs, min_step=args.min_step, search={"seed": seed, "finetune_top": args.finetune_top},
                                importance=args.importance, importance_data=batches,
                                plot_path=Path(args.out_dir) / f"trajectory_{scope}.png")
        results[scope] = (rep, slimkit.evaluate(m, data.test)["accuracy"])
        print(f"-- {scope}\n{rep.table()}")
    seconds = dense.seconds()
    g, (u, u_test) = results[scopes[0]], results.get("local", (None, None))
    print(f"{'scope':<8} {'val acc':>8} {'test acc':>9} {'MACs x':>7} {'params x':>9}  (target val {target:.4f})")
    for scope, (rep, test) in results.items():
        print(f"{scope:<8} {rep.final_accuracy:>8.4f} {test:>9.4f} {rep.macs_reduction:>7.2f} {rep.params_reduction:>9.2f}")
    return {
        "benchmark": "progressive_global", "quick": q, "smoke": args.smoke, "width": width, "train_subset": subset, "step": args.step, "finetune_epochs": args.finetune_epochs, "per_macs": args.per_macs, "min_step": args.min_step, "importance": args.importance, "max_rounds": rounds,
        "target_acc": round(target, 4), "final_acc": round(g[0].final_accuracy, 4),
        "macs_reduction": round(g[0].macs_reduction, 3),
        "uniform_macs_reduction": round(u.macs_reduction, 3) if u else None,
        "uniform_final_acc": round(u.final_accuracy, 4) if u else None, "acc_dense_val": round(val_dense, 4),
        "acc_dense_test": round(acc_dense, 4), "final_test_acc": round(g[1], 4),
        "uniform_test_acc": round(u_test, 4) if u else None, "finetune_top": args.finetune_top,
        "method": scopes[0], "rounds": len(g[0].trajectory) - 1,
        **({"global_macs_reduction": round(results["global"][0].macs_reduction, 3)} if "global" in results else {}),
        "choices": [r.choice for r in g[0].trajectory[1:]], "uniform_rounds": len(u.trajectory) - 1 if u else None,
        "trajectory": [[r.round, round(r.accuracy, 4), r.macs, r.params, r.accepted] for r in g[0].trajectory],
        "seconds": round(seconds, 1),
    }


if __name__ == "__main__":
    main()
