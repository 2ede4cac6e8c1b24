"""Reconstruction-based channel pruning without fine-tuning vs plain L1, VGG-11-BN on Fashion-MNIST.

A dense model is pruned at the same per-layer ``ratio`` three ways, none fine-tuned: ``l1`` (weight magnitude,
no refit: plain L1 pruning), ``thinet`` (greedy selection by next-layer reconstruction on calibration batches)
and ``lasso`` (He et al. 2017), both with the least-squares refit of the next layer. Test accuracy of each.

    python benchmarks/reconstruction.py            # full Fashion-MNIST
    python benchmarks/reconstruction.py --quick    # 4000 training images, width 0.125 (CPU minutes)
    python benchmarks/reconstruction.py --smoke    # 128 images, width 0.125, one epoch, 1 calibration batch

Last line: one JSON object with acc_l1, acc_l1_bn_recalibrated, acc_thinet, acc_lasso, thinet_minus_l1_bn_points,
ratio (means over ``--seeds``, with ``_std`` and ``_seeds``).
"""

from __future__ import annotations

import argparse
import copy
import json
import time

from _fmnist import add_common_args, train_dense
from _seeds import add_seeds_arg, seeded_result

import slimkit
from slimkit.data import make_loader
from slimkit.prune.methods.reconstruction import reconstruct_prune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_seeds_arg(parser)
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--calibration-batches", type=int, default=None, help="default 8; 1 with --smoke")
    args = parser.parse_args()
    keys = ["acc_dense", "acc_l1", "acc_l1_bn_recalibrated", "acc_thinet", "acc_lasso"]
    drops = {"thinet_minus_l1_points": ("acc_thinet", "acc_l1"),
             "thinet_minus_l1_bn_points": ("acc_thinet", "acc_l1_bn_recalibrated"),
             "acc_drop_thinet_points": ("acc_dense", "acc_thinet")}
    result = seeded_result(args, lambda seed: _run(args, seed), keys, drops)
    print(json.dumps(result))


def _run(args: argparse.Namespace, seed: int) -> dict:
    """One seed of the benchmark; returns its figures (main prints the seeds' means)."""
    q = args.quick
    width, epochs = (0.125, 1) if args.smoke else (0.125, 4) if q else (0.25, 15)
    if args.calibration_batches is None:
        args.calibration_batches = 1 if args.smoke else 8
    dense = train_dense(args, seed=seed, arch="vgg11_bn", width=width, epochs=epochs, lr=0.05, weight_decay=1e-4)
    data, model, x, subset, acc_dense = dense.data, dense.model, dense.example, dense.subset, dense.acc_dense
    calib = []
    for i, (xb, _) in enumerate(make_loader(data.train, batch_size=64, shuffle=True, seed=1)):
        if i >= args.calibration_batches:
            break
        calib.append(xb)
    rows, acc = [], {}
    for method, refit in (("l1", False), ("thinet", True), ("lasso", True), ("thinet", False)):
        m = copy.deepcopy(model)
        t = time.perf_counter()
        rep = reconstruct_prune(m, x, calib, ratio=args.ratio, method=method, refit=refit)
        s = time.perf_counter() - t
        a = slimkit.evaluate(m, data.test)["accuracy"]
        name = method + ("" if refit or method == "l1" else " (no refit)")
        acc[name] = a
        err = sum(r.error_refit for r in rep.layers) / max(len(rep.layers), 1)
        rows.append((name, a, rep.macs_reduction, err, s))
        if method == "l1":  # how much of L1's loss is only stale BatchNorm statistics (forward passes, no refit)
            t = time.perf_counter()
            slimkit.recalibrate_bn(m, calib, batches=len(calib))
            acc["l1 + BN recalibration"] = slimkit.evaluate(m, data.test)["accuracy"]
            rows.append(("l1 + BN recalibration", acc["l1 + BN recalibration"], rep.macs_reduction, float("nan"),
                         s + time.perf_counter() - t))
    seconds = dense.seconds()
    print(f"dense test accuracy {acc_dense:.4f}; every layer pruned by {args.ratio:.0%}, no fine-tuning")
    print(f"{'method':<22} {'test acc':>9} {'MACs x':>7} {'mean rel err':>13} {'seconds':>8}")
    for name, a, red, err, s in rows:
        print(f"{name:<22} {a:>9.4f} {red:>7.2f} {err:>13.4f} {s:>8.1f}")
    return {
        "benchmark": "reconstruction", "quick": q, "smoke": args.smoke, "width": width, "train_subset": subset, "ratio": args.ratio,
        "calibration_batches": args.calibration_batches, "acc_dense": round(acc_dense, 4),
        "acc_l1": round(acc["l1"], 4), "acc_thinet": round(acc["thinet"], 4), "acc_lasso": round(acc["lasso"], 4),
        "acc_thinet_no_refit": round(acc["thinet (no refit)"], 4),
        "acc_l1_bn_recalibrated": round(acc["l1 + BN recalibration"], 4),
        "macs_reduction": round(rows[0][2], 3), "seconds": round(seconds, 1),
    }


if __name__ == "__main__":
    main()
