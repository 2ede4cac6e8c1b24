"""Network slimming of a VGG-11-BN on Fashion-MNIST: channels removed, accuracy kept, CPU latency at batch 1.

Dense training (``epochs``), then slimming from the dense model: sparsity training with the L1 subgradient on BN
scales (``sparsity_epochs``, lambda ``strength``), one global |gamma| threshold removing ``ratio`` of all BN
channels, fine-tuning (``finetune_epochs``). Accuracy is on the test split; latency of dense and slimmed models
is timed alternately in one process (``compare_latency``, medians), one intra-op thread.

    python benchmarks/slimming_vgg.py            # full Fashion-MNIST, width 0.25
    python benchmarks/slimming_vgg.py --quick    # 4000 training images, width 0.125, few epochs (CPU minutes)
    python benchmarks/slimming_vgg.py --smoke    # 128 images, width 0.125, one epoch per stage (seconds)

Last line: one JSON object with channels_pruned, acc_dense, acc_pruned, cpu_speedup_bs1.
"""

from __future__ import annotations

import argparse
import copy
import json

from _fmnist import add_common_args, train_dense
from _seeds import add_seeds_arg, seeded_result

import slimkit
from slimkit.prune.methods.slimming import network_slimming


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_seeds_arg(parser)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--strength", type=float, default=None,
                        help="L1 lambda on BN scales (default 5e-3; 1e-2 with --quick). Each step moves a gamma by "
                             "lr * lambda, so a few epochs need a far larger lambda than the paper's 1e-4 over 160")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="default 8; 3 with --quick")
    parser.add_argument("--out-dir", default="runs/benchmarks/slimming_vgg")
    args = parser.parse_args()
    keys = ["acc_dense", "acc_pruned", "cpu_speedup_bs1", "channels_pruned"]
    drops = {"acc_drop_points": ("acc_dense", "acc_pruned")}
    result = seeded_result(args, lambda seed: _run(args, seed), keys, drops)
    print(json.dumps(result))


def _run(args: argparse.Namespace, seed: int) -> dict:
    """One seed of the benchmark; returns its figures (main prints the seeds' means)."""
    q = args.quick
    width = 0.125 if q or args.smoke else 0.25
    epochs, sparsity_epochs, finetune_epochs = (1, 1, 1) if args.smoke else (4, 3, 3) if q else (15, 10, 8)
    if args.finetune_epochs is not None:
        finetune_epochs = args.finetune_epochs
    strength = args.strength if args.strength is not None else (1e-2 if q else 5e-3)
    trained = train_dense(args, seed=seed, arch="vgg11_bn", width=width, epochs=epochs, lr=0.05, weight_decay=1e-4)
    data, model, x, base, subset = trained.data, trained.model, trained.example, trained.train, trained.subset
    acc_dense = trained.acc_dense
    dense = copy.deepcopy(model).eval()
    report = network_slimming(model, x, data.train, val_data=data.val, ratio=args.ratio, strength=strength,
                              sparsity_train={**base, "epochs": sparsity_epochs},
                              finetune={**base, "epochs": finetune_epochs, "lr": 0.02}, plot_dir=args.out_dir)
    model.eval()
    acc_pruned = slimkit.evaluate(model, data.test)["accuracy"]
    seconds = trained.seconds()
    repeats = 5 if args.smoke else 60 if q else 200
    lat_dense, lat_slim, speedup = slimkit.compare_latency(dense, model, x, repeats=repeats, num_threads=1)
    print(f"{'model':<10} {'BN channels':>12} {'MACs':>14} {'test acc':>9} {'bs1 ms':>8}")
    print(f"{'dense':<10} {report.channels_before:>12} {report.macs_before:>14,} {acc_dense:>9.4f} "
          f"{lat_dense.median_ms:>8.3f}")
    print(f"{'slimmed':<10} {report.channels_after:>12} {report.macs_after:>14,} {acc_pruned:>9.4f} "
          f"{lat_slim.median_ms:>8.3f}")
    print(f"channels removed {100 * report.channels_pruned:.1f}%, accuracy change "
          f"{100 * (acc_pruned - acc_dense):+.2f} points, CPU speedup bs1 {speedup:.2f}x; plots in {args.out_dir}")
    return {
        "benchmark": "slimming_vgg", "quick": q, "smoke": args.smoke, "width": width, "train_subset": subset,
        "epochs": [epochs, sparsity_epochs, finetune_epochs], "strength": strength,
        "channels_pruned": round(report.channels_pruned, 4), "acc_dense": round(acc_dense, 4),
        "acc_pruned": round(acc_pruned, 4), "acc_sparse": report.accuracy_sparse,
        "cpu_speedup_bs1": round(speedup, 3), "latency_ms_dense": round(lat_dense.median_ms, 4),
        "latency_ms_pruned": round(lat_slim.median_ms, 4), "macs_reduction": round(report.macs_reduction, 3),
        "seconds": round(seconds, 1),
    }


if __name__ == "__main__":
    main()
