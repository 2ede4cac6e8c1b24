"""ResNet-20 on Fashion-MNIST pruned to at least 2x fewer MACs, then fine-tuned: MACs reduction and accuracy.

Dense training (``epochs``); structured pruning with ``prune_channels(macs_reduction=2, importance="l1",
scope="global", debias=True)`` (one normalized ranking over every layer, residual streams included, the budget met
exactly by the engine's cost model); BatchNorm statistics re-estimated on 50 training batches
(``recalibrate_bn``: a freshly cut ResNet scores near chance on its stale statistics); fine-tuning
(``finetune_epochs``) with knowledge distillation from the dense model. Accuracy is on the test split.

    python benchmarks/resnet_channels.py            # full Fashion-MNIST, 15 + 10 epochs
    python benchmarks/resnet_channels.py --quick    # 4000 training images, few epochs (CPU minutes)
    python benchmarks/resnet_channels.py --smoke    # 128 images, 1 + 1 epochs: the code path in seconds

Last line: one JSON object with macs_reduction, acc_dense, acc_pruned.
"""

from __future__ import annotations

import argparse
import copy
import json

from _fmnist import add_common_args, train_dense
from _seeds import add_seeds_arg, seeded_result

import slimkit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_seeds_arg(parser)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--macs-reduction", type=float, default=2.0)
    parser.add_argument("--epochs", type=int, default=None, help="dense epochs (default 15; 4 with --quick)")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="default 10; 3 with --quick")
    args = parser.parse_args()
    keys = ["acc_dense", "acc_pruned", "acc_recalibrated", "params_reduction"]
    drops = {"acc_drop_points": ("acc_dense", "acc_pruned")}
    result = seeded_result(args, lambda seed: _run(args, seed), keys, drops)
    print(json.dumps(result))


def _run(args: argparse.Namespace, seed: int) -> dict:
    """One seed of the benchmark; returns its figures (main prints the seeds' means)."""
    q = args.quick
    epochs = args.epochs if args.epochs is not None else (1 if args.smoke else 4 if q else 15)
    finetune_epochs = args.finetune_epochs if args.finetune_epochs is not None else (1 if args.smoke else 3 if q else 10)
    dense = train_dense(args, seed=seed, arch=args.model, width=1.0, epochs=epochs, lr=0.1, weight_decay=5e-4)
    data, model, x, base, subset, acc_dense = (dense.data, dense.model, dense.example, dense.train, dense.subset,
                                               dense.acc_dense)
    teacher = copy.deepcopy(model).eval()
    report = slimkit.prune_channels(model, x, macs_reduction=args.macs_reduction, importance="l1", debias=True)
    acc_cut = slimkit.evaluate(model, data.test)["accuracy"]
    slimkit.recalibrate_bn(model, data.train, batches=2 if args.smoke else 50)
    acc_recalibrated = slimkit.evaluate(model, data.test)["accuracy"]
    slimkit.fit(model, data.train, {**base, "epochs": finetune_epochs, "lr": 0.02, "distill_alpha": 0.7},
                val_data=data.val, teacher=teacher)
    acc_pruned = slimkit.evaluate(model, data.test)["accuracy"]
    seconds = dense.seconds()
    print(report.table(limit=25))
    print(f"{'model':<10} {'MACs':>14} {'params':>10} {'test acc':>9}")
    print(f"{'dense':<10} {report.macs_before:>14,} {report.params_before:>10,} {acc_dense:>9.4f}")
    print(f"{'pruned':<10} {report.macs_after:>14,} {report.params_after:>10,} {acc_pruned:>9.4f}  "
          f"(before fine-tuning {acc_cut:.4f}, BN recalibrated {acc_recalibrated:.4f})")
    return {
        "benchmark": "resnet_channels", "quick": q, "smoke": args.smoke, "model": args.model, "train_subset": subset,
        "epochs": [epochs, finetune_epochs], "macs_reduction": round(report.macs_reduction, 3),
        "params_reduction": round(report.params_reduction, 3), "acc_dense": round(acc_dense, 4),
        "acc_pruned": round(acc_pruned, 4), "acc_before_finetune": round(acc_cut, 4),
        "acc_recalibrated": round(acc_recalibrated, 4), "seconds": round(seconds, 1),
    }


if __name__ == "__main__":
    main()
