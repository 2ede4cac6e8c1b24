"""Reconstruction-based channel pruning without fine-tuning vs plain L1, VGG-11-BN on Fashion-MNIST.

A dense model is pruned at the same per-layer ``ratio`` three ways, none fine-tuned: ``l1`` (weight magnitude,
no refit: plain L1 pruning), ``thinet`` (greedy selection by next-layer reconstruction on calibration batches)
and ``lasso`` (He et al. 2017), both with the least-squares refit of the next layer. Test accuracy of each.

    python benchmarks/reconstruction.py            # full Fashion-MNIST
    python benchmarks/reconstruction.py --quick    # 4000 training images, width 0.125 (CPU minutes)

Last line: one JSON object with acc_l1, acc_thinet, acc_lasso, ratio.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import slimkit  # noqa: E402
from slimkit.data import make_loader  # noqa: E402
from slimkit.prune.methods.reconstruction import reconstruct_prune  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--calibration-batches", type=int, default=8)
    args = parser.parse_args()
    q = args.quick
    torch.set_num_threads(1 if q else 2)
    subset, width, epochs = (4000, 0.125, 4) if q else (None, 0.25, 15)
    data = slimkit.load_dataset("fashion_mnist", subset=subset, seed=0)
    x = torch.zeros(1, 1, 28, 28)
    model = slimkit.create_model("vgg11_bn", in_channels=1, width=width)
    base = {"batch_size": 128, "lr": 0.05, "weight_decay": 1e-4, "progress": False, "device": "cpu"}
    t0 = time.perf_counter()
    slimkit.fit(model, data.train, {**base, "epochs": epochs}, val_data=data.val)
    model.eval()
    acc_dense = slimkit.evaluate(model, data.test)["accuracy"]
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
    seconds = time.perf_counter() - t0
    print(f"dense test accuracy {acc_dense:.4f}; every layer pruned by {args.ratio:.0%}, no fine-tuning")
    print(f"{'method':<20} {'test acc':>9} {'MACs x':>7} {'mean rel err':>13} {'seconds':>8}")
    for name, a, red, err, s in rows:
        print(f"{name:<20} {a:>9.4f} {red:>7.2f} {err:>13.4f} {s:>8.1f}")
    print(json.dumps({
        "benchmark": "reconstruction", "quick": q, "width": width, "train_subset": subset, "ratio": args.ratio,
        "calibration_batches": args.calibration_batches, "acc_dense": round(acc_dense, 4),
        "acc_l1": round(acc["l1"], 4), "acc_thinet": round(acc["thinet"], 4), "acc_lasso": round(acc["lasso"], 4),
        "acc_thinet_no_refit": round(acc["thinet (no refit)"], 4),
        "macs_reduction": round(rows[0][2], 3), "seconds": round(seconds, 1),
    }))


if __name__ == "__main__":
    main()
