"""Distillation on Fashion-MNIST: does a half-width student learn more from a teacher than alone?

A LeNet-5 teacher (width 1.0) is trained once. A half-width LeNet-5 student (``width=0.5``: 10/25/250 channels,
about a quarter of the parameters) is then trained with the same schedule and seed twice: alone (cross-entropy)
and with soft targets (Hinton et al.) plus a FitNets hint on the last feature map, over several seeds. Prints a
table and, as its last line, one JSON object with the keys of issue 6.

``--teacher-width 1.0 --student-width 0.25`` is the strong-teacher setting of issue 17 (the teacher well above the
student). ``--select`` chooses alpha and T on the validation split (carved from the training data, seed 0) over a
small grid before the seeded runs; the test set is then used once per trained student.

    python benchmarks/distill.py            # full run
    python benchmarks/distill.py --quick    # CPU-minutes version
    python benchmarks/distill.py --smoke    # seconds: 128 images, one epoch each, one seed
    python benchmarks/distill.py --quick --student-width 0.25 --seeds 3 --select   # strong teacher
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _seeds import over_seeds  # noqa: E402

from slimkit.data import load_dataset  # noqa: E402
from slimkit.distill.hints import HintHook  # noqa: E402
from slimkit.models import create_model  # noqa: E402
from slimkit.train import TrainConfig, evaluate, fit  # noqa: E402

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
    parser.add_argument("--first-seed", type=int, default=0, help="start at this seed (seeds K..K+N-1)")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the soft-target loss")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--select", action="store_true",
                        help="choose alpha and T on the validation split (grid, seed 0) instead of the flags")
    parser.add_argument("--hint-weight", type=float, default=0.1, help="0 turns the FitNets hint off")
    parser.add_argument("--teacher-width", type=float, default=1.0, help="LeNet-5 width of the teacher")
    parser.add_argument("--student-width", type=float, default=0.5, help="LeNet-5 width of the student")
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
    teacher = create_model("lenet5", in_channels=1, num_classes=10, width=args.teacher_width)
    start = time.perf_counter()
    fit(teacher, data.train, _config(teacher_epochs, 0, 0.0, args.temperature))
    teacher.eval()
    teacher_acc = 100 * evaluate(teacher, data.test, device="cpu")["accuracy"]
    print(f"teacher lenet5 x{args.teacher_width}: {teacher_acc:.2f}%  ({time.perf_counter() - start:.0f}s)")

    def student(seed: int, alpha: float, temperature: float) -> torch.nn.Module:
        torch.manual_seed(seed)
        model = create_model("lenet5", in_channels=1, num_classes=10, width=args.student_width)
        if alpha == 0.0:
            fit(model, data.train, _config(student_epochs, seed, 0.0, temperature))
            return model
        hooks = [HintHook(HINT, weight=args.hint_weight, example_inputs=example)] if args.hint_weight > 0 else []
        fit(model, data.train, _config(student_epochs, seed, alpha, temperature), teacher=teacher, hooks=hooks)
        return model

    alpha, temperature, grid = args.alpha, args.temperature, {}
    if args.select:
        if data.val is None:
            raise ValueError("--select needs a validation split (load_dataset val_fraction > 0)")
        for a, t in [(0.5, 2.0), (0.5, 4.0), (0.9, 2.0), (0.9, 4.0)]:
            grid[f"{a}/{t}"] = round(100 * evaluate(student(0, a, t), data.val, device="cpu")["accuracy"], 2)
            print(f"validation: alpha {a} T {t}: {grid[f'{a}/{t}']:.2f}%", flush=True)
        alpha, temperature = (float(x) for x in max(grid, key=grid.get).split("/"))
        print(f"chosen on validation: alpha {alpha} T {temperature}")

    def run(seed: int) -> dict:
        alone = 100 * evaluate(student(seed, 0.0, temperature), data.test, device="cpu")["accuracy"]
        kd = 100 * evaluate(student(seed, alpha, temperature), data.test, device="cpu")["accuracy"]
        return {"student_alone": alone, "student_kd": kd, "gain": kd - alone}

    _, summary = over_seeds(args.seeds, run, ["student_alone", "student_kd"], effects=["gain"], digits=2, first=args.first_seed)
    result = {
        "student_alone_mean": summary["student_alone"],
        "student_alone_std": summary["student_alone_std"],
        "student_kd_mean": summary["student_kd"],
        "student_kd_std": summary["student_kd_std"],
        "gain_mean": summary["gain"],
        "gain_std": summary["gain_std"],
        "gain_within_std": summary["gain_within_std"],
        "per_seed": {k: summary[f"{k}_seeds"] for k in ("student_alone", "student_kd", "gain")},
        "teacher_acc": round(teacher_acc, 2),
        "teacher_width": args.teacher_width,
        "student_width": args.student_width,
        "alpha": alpha,
        "temperature": temperature,
        "validation_grid": grid or None,
        "seeds": args.seeds,
        "smoke": args.smoke,
        "quick": args.quick,
        "versions": summary["versions"],
    }
    print()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
