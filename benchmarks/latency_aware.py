"""Hardware-aware channel selection on a trained model: what ``latency_weight`` buys in speed and costs in accuracy.

A MobileNetV2 (CIFAR-style, the zoo's ``mobilenetv2``, width 0.5) is trained on Fashion-MNIST, then cut three
ways with ``prune_channels(round_to=8)``:

- ``importance``: 2x fewer MACs, ranked by importance alone (``latency_weight=0``, global L1);
- ``latency_aware``: 2x fewer MACs, hardware-aware (``latency_weight=1``: importance divided by the CPU time each
  channel's removal saves per MAC it saves, from the per-layer op times taken while tracing at the timed batch);
- ``importance_same_latency``: ranked by importance alone, cut until its measured latency
  (``target_latency_ms``) is that of the ``latency_aware`` model: the comparison at equal speed.

Each cut model gets its BatchNorm statistics re-estimated (``recalibrate_bn``, forward passes only) and is then
fine-tuned with distillation from the dense model. Test accuracy is reported after recalibration (the selection
alone) and after fine-tuning; latency of dense and the cut models is timed alternately in one process (medians)
at the traced batch and at batch 1.

    python benchmarks/latency_aware.py            # full Fashion-MNIST, 4 + 2 epochs
    python benchmarks/latency_aware.py --quick    # 4000 training images, fewer epochs (CPU minutes)
    python benchmarks/latency_aware.py --smoke    # 128 images, width 0.25, 1 + 1 epochs, 2-3 rounds (seconds)

Last line: one JSON object with macs_reduction, speedup and accuracy of each selection (``KEY_VARIANT``).
"""

from __future__ import annotations

import argparse
import copy
import json

import torch
from _fmnist import add_common_args, train_dense
from _seeds import add_seeds_arg, seeded_result
from _timing import interleaved_ms

import slimkit


def latency_ms(models: dict[str, torch.nn.Module], batch: int, rounds: int) -> dict[str, float]:
    """Median latency of each model, timed in turn each round so load changes hit all alike."""
    x = torch.randn(batch, 1, 28, 28)
    for m in models.values():
        m.eval()
    with torch.inference_mode():
        return interleaved_ms({k: (lambda m=m: m(x)) for k, m in models.items()}, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_seeds_arg(parser)
    parser.add_argument("--model", default="mobilenetv2")
    parser.add_argument("--width", type=float, default=None, help="width multiplier of the dense model (0.5; 0.25 smoke)")
    parser.add_argument("--macs-reduction", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=64, help="batch the latency table is taken at and timed at")
    parser.add_argument("--epochs", type=int, default=None, help="dense epochs (default 4; 3 with --quick)")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="default 2; 1 with --quick")
    args = parser.parse_args()
    keys = ["acc_dense", "acc_finetuned_importance", "acc_finetuned_latency_aware",
            "acc_finetuned_importance_same_latency", "speedup_bs64_latency_aware"]
    drops = {"acc_drop_points_importance": ("acc_dense", "acc_finetuned_importance"),
             "acc_drop_points_latency_aware": ("acc_dense", "acc_finetuned_latency_aware")}
    result = seeded_result(args, lambda seed: _run(args, seed), keys, drops)
    print(json.dumps(result))


def _run(args: argparse.Namespace, seed: int) -> dict:
    """One seed of the benchmark; returns its figures (main prints the seeds' means)."""
    q, smoke = args.quick, args.smoke
    args.width = args.width or (0.25 if smoke else 0.5)
    epochs = args.epochs if args.epochs is not None else (1 if smoke else 3 if q else 4)
    finetune_epochs = args.finetune_epochs if args.finetune_epochs is not None else (1 if q or smoke else 2)
    dense = train_dense(args, seed=seed, arch=args.model, width=args.width, epochs=epochs, lr=0.05, weight_decay=4e-5)
    data, teacher = dense.data, dense.model.eval()
    example = torch.zeros(args.batch, 1, 28, 28)
    rows: dict[str, dict[str, float]] = {}
    cut: dict[str, torch.nn.Module] = {}
    with torch.inference_mode():  # warm the kernels at the traced batch, so tracing times steady-state ops
        for _ in range(3):
            teacher(example)
    for name, weight in (("importance", 0.0), ("latency_aware", 1.0), ("importance_same_latency", 0.0)):
        model = copy.deepcopy(teacher)
        budget: dict[str, float] = {"macs_reduction": args.macs_reduction}
        if name == "importance_same_latency":
            budget = {"target_latency_ms": slimkit.measure_latency(cut["latency_aware"], (example,), warmup=3,
                                                                   repeats=3 if smoke else 20).median_ms}
        report = slimkit.prune_channels(model, example, importance="l1", round_to=8, latency_weight=weight,
                                        latency_batch_size=args.batch, **budget)
        slimkit.recalibrate_bn(model, data.train, batches=2 if smoke else 50)
        acc_recalibrated = slimkit.evaluate(model, data.test)["accuracy"]
        slimkit.fit(model, data.train, {**dense.train, "epochs": finetune_epochs, "lr": 0.01, "distill_alpha": 0.7},
                    val_data=data.val, teacher=teacher)
        model.eval()
        cut[name] = model
        rows[name] = {"latency_weight": weight, "macs_reduction": report.macs_reduction,
                      "params_reduction": report.params_reduction, "acc_recalibrated": acc_recalibrated,
                      "acc_finetuned": slimkit.evaluate(model, data.test)["accuracy"]}
    for batch, rounds in ((args.batch, 2 if smoke else 10 if q else 30), (1, 3 if smoke else 30 if q else 100)):
        lat = latency_ms({"dense": teacher, **cut}, batch, rounds)
        for name in cut:
            rows[name][f"speedup_bs{batch}"] = lat["dense"] / lat[name]
            rows[name][f"speedup_per_macs_bs{batch}"] = rows[name][f"speedup_bs{batch}"] / rows[name]["macs_reduction"]
    cols = list(rows["importance"])
    print(f"dense test accuracy {dense.acc_dense:.4f}; threads {torch.get_num_threads()}")
    print(f"{'metric':<26}" + "".join(f"{n:>25}" for n in rows))
    for c in cols:
        print(f"{c:<26}" + "".join(f"{rows[n][c]:>25.4f}" for n in rows))
    return {
        "benchmark": "latency_aware", "quick": q, "smoke": smoke, "model": args.model, "width": args.width, "train_subset": dense.subset,
        "epochs": [epochs, finetune_epochs], "batch": args.batch, "acc_dense": round(dense.acc_dense, 4),
        **{f"{k}_{n}": round(v, 4) for n, r in rows.items() for k, v in r.items() if k != "latency_weight"},
        "seconds": round(dense.seconds(), 1),
    }


if __name__ == "__main__":
    main()
