"""Distillation on Fashion-MNIST: does a half-width student learn more from a teacher than alone?

A LeNet-5 teacher (width 1.0) is trained once. A half-width LeNet-5 student (``width=0.5``: 10/25/250 channels,
about a quarter of the parameters) is then trained with the same schedule and seed twice: alone (cross-entropy)
and with soft targets (Hinton et al.) plus a FitNets hint on the last feature map, over several seeds. Prints a
table and, as its last line, one JSON object with the keys of issue 6.

    python benchmarks/distill.py            # full run
    python benchmarks/distill.py --quick    # CPU-minutes version
    python benchmarks/distill.py --smoke    # seconds: 128 images, one epoch each, one seed
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from slimkit.data import load_dataset
from slimkit.distill.hints import HintHook
from slimkit.models import create_model
from slimkit.train import TrainConfig, evaluate, fit

HINT = {"features.5": "features.5"}  # the second max-pool: (B, 25, 4, 4) student, (B, 50, 4, 4) teacher


def _config(epochs: int, seed: int, alpha: float, temperature: float) -> TrainConfig:
    # warm-up and clipping for every run alike: the T^2-scaled soft loss gives early gradients up to T times those
    # of cross-entropy, and at lr 0.05 without them one seed of the distilled student diverged
    return TrainConfig(epochs=epochs, lr=0.05, batch_size=128, seed=seed, device="cpu", progress=False,
                       distill_alpha=alpha, distill_temperature=temperature, warmup_epochs=0.5, grad_clip=5.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="subset and fewer epochs (CPU minutes)")
    parser.add_argument("--smoke", action="store_true", help="128 images, one epoch each, one seed (seconds)")
    parser.add_argument("--seeds", type=int, default=None, help="default 3; 1 with --smoke")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the soft-target loss")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--hint-weight", type=float, default=0.1, help="0 turns the FitNets hint off")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: on a shared machine more threads wait on each other)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # 8k-image subsets (train and test) keep 7 trainings to CPU minutes on the shared machine
    subset, teacher_epochs, student_epochs = (4000, 4, 2) if args.quick else (8000, 5, 3)
    if args.smoke:
        subset, teacher_epochs, student_epochs = 128, 1, 1
    args.seeds = args.seeds or (1 if args.smoke else 3)

    data = load_dataset("fashion_mnist", seed=0, subset=subset)
    example = data.example_inputs(1)
    torch.manual_seed(0)
    teacher = create_model("lenet5", in_channels=1, num_classes=10)
    start = time.perf_counter()
    fit(teacher, data.train, _config(teacher_epochs, 0, 0.0, args.temperature))
    teacher.eval()
    teacher_acc = 100 * evaluate(teacher, data.test, device="cpu")["accuracy"]
    print(f"teacher lenet5 x1.0: {teacher_acc:.2f}%  ({time.perf_counter() - start:.0f}s)")

    alone, kd = [], []
    print(f"{'seed':>4} {'alone %':>9} {'KD+hint %':>10}")
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        student = create_model("lenet5", in_channels=1, num_classes=10, width=0.5)
        fit(student, data.train, _config(student_epochs, seed, 0.0, args.temperature))
        alone.append(100 * evaluate(student, data.test, device="cpu")["accuracy"])

        torch.manual_seed(seed)
        student = create_model("lenet5", in_channels=1, num_classes=10, width=0.5)
        hooks = [HintHook(HINT, weight=args.hint_weight, example_inputs=example)] if args.hint_weight > 0 else []
        fit(student, data.train, _config(student_epochs, seed, args.alpha, args.temperature), teacher=teacher,
            hooks=hooks)
        kd.append(100 * evaluate(student, data.test, device="cpu")["accuracy"])
        print(f"{seed:>4} {alone[-1]:>9.2f} {kd[-1]:>10.2f}")

    def std(values: list[float]) -> float:
        return statistics.stdev(values) if len(values) > 1 else 0.0

    print(f"mean {statistics.mean(alone):>9.2f} {statistics.mean(kd):>10.2f}   (std {std(alone):.2f} / {std(kd):.2f})")
    result = {
        "student_alone_mean": round(statistics.mean(alone), 2),
        "student_alone_std": round(std(alone), 2),
        "student_kd_mean": round(statistics.mean(kd), 2),
        "student_kd_std": round(std(kd), 2),
        "seeds": args.seeds,
        "smoke": args.smoke,
    }
    print()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
