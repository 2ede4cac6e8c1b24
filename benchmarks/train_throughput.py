"""Training throughput (images/s) of slimkit's engine on Fashion-MNIST, against a hand-written PyTorch loop.

Runs ``slimkit.train.fit`` on a zoo model (LeNet-5 by default) and, alternately in the same process, the minimal
loop ``zero_grad / forward / cross-entropy / backward / step`` over the same batches, so the engine's overhead
(hooks, metrics, progress, scheduler) shows as a ratio that machine noise affects less than absolute figures.
The loader alone is timed too (batching 54,000 in-memory images).

Usage:
    python benchmarks/train_throughput.py            # 3 x one full epoch each (54,000 images)
    python benchmarks/train_throughput.py --quick    # 3 x 40 steps each
    python benchmarks/train_throughput.py --smoke    # seconds: 1 x 2 steps on 256 images
    python benchmarks/train_throughput.py --threads 1   # one intra-op thread (steadier on a shared CPU)

The last line printed is one JSON object; ``images_per_s`` is the engine's median throughput.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from slimkit.data import load_dataset, make_loader
from slimkit.models import create_model
from slimkit.train import TrainConfig, evaluate, fit
from slimkit.train.distributed import resolve_device


def bare_loop(model: torch.nn.Module, loader, steps: int, device: torch.device, lr: float) -> float:
    """Images/s of the minimal PyTorch training loop over ``steps`` batches of ``loader``."""
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    samples = 0
    started = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if i >= steps:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        samples += y.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return samples / (time.perf_counter() - started)


def loader_only(loader, steps: int) -> float:
    samples = 0
    started = time.perf_counter()
    for i, (_, y) in enumerate(loader):
        if i >= steps:
            break
        samples += y.shape[0]
    return samples / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 steps per measurement instead of a full epoch")
    parser.add_argument("--smoke", action="store_true", help="2 steps, 1 repeat, 256 images (seconds)")
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=None, help="default 3; 1 with --smoke")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (1 is far steadier on a shared, oversubscribed CPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    args.repeats = args.repeats or (1 if args.smoke else 3)
    data = load_dataset("fashion_mnist", subset=256 if args.smoke else None)
    device = resolve_device(args.device, distributed=False)
    loader = make_loader(data.train, batch_size=args.batch_size, shuffle=True, seed=0)
    steps = 2 if args.smoke else 40 if args.quick else len(loader)
    config = TrainConfig(epochs=1, batch_size=args.batch_size, lr=0.05, max_steps_per_epoch=steps,
                         progress=False, device=str(device))

    def fresh_model() -> torch.nn.Module:
        torch.manual_seed(0)
        return create_model(args.model, in_channels=data.in_channels, num_classes=data.num_classes)

    # warm-up (first-call costs: allocator, lazy imports) outside the timed runs
    fit(fresh_model(), data.train, TrainConfig(**{**config.__dict__, "max_steps_per_epoch": 1 if args.smoke else 5}))
    engine, bare, load = [], [], []
    val_accuracy = None
    for repeat in range(args.repeats):  # alternate so drifting machine load hits both alike
        model = fresh_model()
        result = fit(model, data.train, config)
        engine.append(result.history[-1]["images_per_s"])
        if repeat == 0 and not args.quick and not args.smoke:
            val_accuracy = evaluate(model, data.val)["accuracy"]
        bare.append(bare_loop(fresh_model(), loader, steps, device, config.lr))
        load.append(loader_only(loader, steps))

    med_engine, med_bare, med_load = (statistics.median(v) for v in (engine, bare, load))
    rows = [
        ("slimkit fit", med_engine, min(engine), max(engine)),
        ("bare PyTorch loop", med_bare, min(bare), max(bare)),
        ("loader only", med_load, min(load), max(load)),
    ]
    print(f"{args.model} on Fashion-MNIST, batch {args.batch_size}, {steps} steps x {args.repeats} repeats, "
          f"device {device}, torch threads {torch.get_num_threads()}")
    print(f"{'':20s} {'median img/s':>13s} {'min':>9s} {'max':>9s}")
    for name, med, lo, hi in rows:
        print(f"{name:20s} {med:13.0f} {lo:9.0f} {hi:9.0f}")
    print(f"engine / bare loop: {med_engine / med_bare:.3f}")
    if val_accuracy is not None:
        print(f"validation accuracy after one epoch: {100 * val_accuracy:.2f}%")
    print(json.dumps({
        "images_per_s": round(med_engine, 1),
        "bare_loop_images_per_s": round(med_bare, 1),
        "engine_vs_bare": round(med_engine / med_bare, 3),
        "loader_images_per_s": round(med_load, 1),
        "model": args.model,
        "batch_size": args.batch_size,
        "steps": steps,
        "repeats": args.repeats,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "val_accuracy_after_epoch": None if val_accuracy is None else round(val_accuracy, 4),
        "quick": args.quick,
        "smoke": args.smoke,
    }))


if __name__ == "__main__":
    main()
