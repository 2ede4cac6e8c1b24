"""ResNet-20 on Fashion-MNIST pruned to at least 2x fewer MACs, then fine-tuned: MACs reduction and accuracy.

Dense training (``epochs``); structured pruning with ``prune_channels(macs_reduction=2, importance="l1",
scope="global", debias=True)`` (one normalized ranking over every layer, residual streams included, the budget met
exactly by the engine's cost model); BatchNorm statistics re-estimated on 50 training batches
(``recalibrate_bn``: a freshly cut ResNet scores near chance on its stale statistics); fine-tuning
(``finetune_epochs``) with knowledge distillation from the dense model. Accuracy is on the test split.

    python benchmarks/resnet_channels.py            # full Fashion-MNIST, 15 + 10 epochs
    python benchmarks/resnet_channels.py --quick    # 4000 training images, few epochs (CPU minutes)

Last line: one JSON object with macs_reduction, acc_dense, acc_pruned.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--macs-reduction", type=float, default=2.0)
    parser.add_argument("--epochs", type=int, default=None, help="dense epochs (default 15; 4 with --quick)")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="default 10; 3 with --quick")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default 1 quick, 2 full)")
    args = parser.parse_args()
    q = args.quick
    torch.set_num_threads(args.threads or (1 if q else 2))
    subset = 4000 if q else None
    epochs = args.epochs if args.epochs is not None else (4 if q else 15)
    finetune_epochs = args.finetune_epochs if args.finetune_epochs is not None else (3 if q else 10)
    data = slimkit.load_dataset("fashion_mnist", subset=subset, seed=0)
    x = torch.zeros(1, 1, 28, 28)
    model = slimkit.create_model(args.model, in_channels=1)
    base = {"batch_size": 128, "lr": 0.1, "weight_decay": 5e-4, "progress": False, "device": "cpu"}
    t0 = time.perf_counter()
    slimkit.fit(model, data.train, {**base, "epochs": epochs}, val_data=data.val)
    acc_dense = slimkit.evaluate(model, data.test)["accuracy"]
    teacher = copy.deepcopy(model).eval()
    report = slimkit.prune_channels(model, x, macs_reduction=args.macs_reduction, importance="l1", debias=True)
    acc_cut = slimkit.evaluate(model, data.test)["accuracy"]
    slimkit.recalibrate_bn(model, data.train, batches=50)
    acc_recalibrated = slimkit.evaluate(model, data.test)["accuracy"]
    slimkit.fit(model, data.train, {**base, "epochs": finetune_epochs, "lr": 0.02, "distill_alpha": 0.7},
                val_data=data.val, teacher=teacher)
    acc_pruned = slimkit.evaluate(model, data.test)["accuracy"]
    seconds = time.perf_counter() - t0
    print(report.table(limit=25))
    print(f"{'model':<10} {'MACs':>14} {'params':>10} {'test acc':>9}")
    print(f"{'dense':<10} {report.macs_before:>14,} {report.params_before:>10,} {acc_dense:>9.4f}")
    print(f"{'pruned':<10} {report.macs_after:>14,} {report.params_after:>10,} {acc_pruned:>9.4f}  "
          f"(before fine-tuning {acc_cut:.4f}, BN recalibrated {acc_recalibrated:.4f})")
    print(json.dumps({
        "benchmark": "resnet_channels", "quick": q, "model": args.model, "train_subset": subset,
        "epochs": [epochs, finetune_epochs], "macs_reduction": round(report.macs_reduction, 3),
        "params_reduction": round(report.params_reduction, 3), "acc_dense": round(acc_dense, 4),
        "acc_pruned": round(acc_pruned, 4), "acc_before_finetune": round(acc_cut, 4),
        "acc_recalibrated": round(acc_recalibrated, 4), "seconds": round(seconds, 1),
    }))


if __name__ == "__main__":
    main()
