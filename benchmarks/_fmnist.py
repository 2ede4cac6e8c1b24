"""Set-up shared by the Fashion-MNIST pruning benchmarks: threads, data, and a dense model trained on it.

Not a benchmark itself (no ``main``); each benchmark imports it from its own folder, which Python puts first on
``sys.path`` when the benchmark runs as ``python benchmarks/NAME.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import slimkit  # noqa: E402

QUICK_SUBSET = 4000  # training images of a --quick run
SMOKE_SUBSET = 128  # images per split of a --smoke run (seconds; checks the code path, not the figures)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SUBSET} training images, few epochs (CPU minutes)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"{SMOKE_SUBSET} images per split, one epoch per stage, tiny settings (seconds)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default 1 quick, 2 full)")


@dataclass
class Dense:
    """A trained dense model and everything the benchmark compares it with."""

    data: Any
    model: torch.nn.Module
    example: torch.Tensor  # (1, 1, 28, 28) tracing input
    train: dict[str, Any]  # TrainConfig fields shared by dense training and fine-tuning
    subset: int | None
    acc_dense: float  # test accuracy
    acc_dense_val: float | None
    started: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        return time.perf_counter() - self.started


def train_dense(args: argparse.Namespace, arch: str, *, width: float, epochs: int, lr: float,
                weight_decay: float, seed: int = 0) -> Dense:
    """Set threads, load Fashion-MNIST (a seeded subset with ``--quick``), train ``arch`` and evaluate it.

    ``seed`` sets the initial weights and the data order of every training that uses ``Dense.train``; the
    train/validation/test split stays the one of seed 0, so seeds differ only in the training run."""
    torch.set_num_threads(args.threads or (1 if args.quick or args.smoke else 2))
    subset = SMOKE_SUBSET if args.smoke else QUICK_SUBSET if args.quick else None
    data = slimkit.load_dataset("fashion_mnist", subset=subset, seed=0)
    torch.manual_seed(seed)  # the same initial weights for a seed (fit seeds the data order itself)
    model = slimkit.create_model(arch, in_channels=1, width=width)
    train = {"batch_size": 128, "lr": lr, "weight_decay": weight_decay, "progress": False, "device": "cpu",
             "seed": seed}
    started = time.perf_counter()
    slimkit.fit(model, data.train, {**train, "epochs": epochs}, val_data=data.val)
    model.eval()
    acc_val = slimkit.evaluate(model, data.val)["accuracy"] if data.val is not None else None
    return Dense(data, model, torch.zeros(1, 1, 28, 28), train, subset, slimkit.evaluate(model, data.test)["accuracy"],
                 acc_val, started)
