"""Binary (BWN) and ternary (TWN) weights for a zoo CNN on Fashion-MNIST, trained with slimkit's engine.

The CNN is pre-trained in fp32 first; then three copies are trained further with the same engine and the same
schedule (Adam, lr 1e-3): the fp32 baseline itself, a BWN copy and a TWN copy whose conv/linear weights (first and
last layers excepted) are binarized/ternarized in the forward pass. All three thus see the same total training. Size ratios count 1 bit (BWN) / 2 bits (TWN) per quantized weight plus per-filter scales, and 32 bits
for every other parameter (first/last layers, biases, BatchNorm).

    python benchmarks/binary_ternary.py            # vgg11_bn width 0.5, full data, 4 + 4 epochs
    python benchmarks/binary_ternary.py --quick    # width 0.25, 3k training images, 1 + 1 epoch, 2k test
    python benchmarks/binary_ternary.py --smoke    # seconds: width 0.125, 128 images, 1 + 1 epoch

Last line: JSON with acc_fp32, acc_bwn, acc_twn, size_ratio_bwn, size_ratio_twn (and more).
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

from _seeds import add_seeds_arg, seeded_result  # noqa: E402

from slimkit.data import load_dataset  # noqa: E402
from slimkit.models import create_model  # noqa: E402
from slimkit.quant import BinaryConfig, TernaryConfig, quantize  # noqa: E402
from slimkit.train import TrainConfig, evaluate, fit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few CPU minutes")
    parser.add_argument("--smoke", action="store_true", help="seconds: the code path on a tiny model and data")
    parser.add_argument("--model", default="vgg11_bn", help="zoo CNN")
    parser.add_argument("--width", type=float, default=None,
                        help="zoo width multiplier (0.25 quick, 0.5 full, 0.125 smoke)")
    parser.add_argument("--epochs", type=int, default=None, help="fp32 epochs (and again for each low-bit model)")
    add_seeds_arg(parser)
    args = parser.parse_args()
    keys = ["acc_fp32", "acc_bwn", "acc_twn"]
    drops = {"acc_drop_bwn_points": ("acc_fp32", "acc_bwn"), "acc_drop_twn_points": ("acc_fp32", "acc_twn")}
    result = seeded_result(args, lambda seed: _run(args, seed), keys, drops)
    print(json.dumps(result))


def _run(args: argparse.Namespace, seed: int) -> dict:
    """One seed of the benchmark; returns its figures (main prints the seeds' means)."""
    torch.manual_seed(seed)

    subset = 128 if args.smoke else 3_000 if args.quick else None
    epochs = args.epochs or (1 if args.quick or args.smoke else 4)
    width = args.width or (0.125 if args.smoke else 0.25 if args.quick else 0.5)
    data = load_dataset("fashion_mnist", subset=subset, seed=0)
    test = data.test
    if args.quick:
        test = torch.utils.data.Subset(data.test, range(min(2000, len(data.test))))
    model = create_model(args.model, in_channels=data.in_channels, num_classes=data.num_classes, width=width)
    t0 = time.perf_counter()
    fit(model, data.train, TrainConfig(epochs=epochs, lr=0.02, warmup_epochs=0.2, batch_size=128, seed=seed,
                                       device="cpu", progress=False))
    acc_pretrained = evaluate(model, test)["accuracy"]
    print(f"pre-trained fp32: {100 * acc_pretrained:.2f}% in {time.perf_counter() - t0:.0f}s")
    rows = []

    for name, config in (("fp32", None), ("bwn", BinaryConfig(method="bwn")), ("twn", TernaryConfig(method="twn"))):
        low = copy.deepcopy(model)
        report = quantize(low, config) if config is not None else None
        t0 = time.perf_counter()
        # low-bit training prefers Adam with a small step: sign/threshold flips are coarse
        fit(low, data.train, TrainConfig(epochs=epochs, optimizer="adam", lr=1e-3, batch_size=128, seed=seed,
                                         weight_decay=0.0, device="cpu", progress=False))
        acc = evaluate(low, test)["accuracy"]
        if report is None:
            rows.append((name, acc, 1.0, time.perf_counter() - t0, "-"))
            continue
        rows.append((name, acc, report.size_ratio, time.perf_counter() - t0,
                     f"{len(report.layers)} layers low-bit, {len(report.skipped)} kept fp32"))
        if name == "bwn":
            print(report.table())

    print(f"\n{args.model} (width {width}) on Fashion-MNIST ({len(test)} test images), {epochs} fp32 epochs, "
          f"then {epochs} more for each row")
    print(f"{'weights':<8}{'accuracy':>10}{'size ratio':>12}{'train s':>9}  layers")
    for name, acc, ratio, seconds, note in rows:
        print(f"{name:<8}{100 * acc:>9.2f}%{ratio:>11.2f}x{seconds:>9.0f}  {note}")
    result = {
        "acc_fp32": round(rows[0][1], 4),
        "acc_fp32_pretrained": round(acc_pretrained, 4),
        "acc_bwn": round(rows[1][1], 4),
        "acc_twn": round(rows[2][1], 4),
        "size_ratio_bwn": round(rows[1][2], 2),
        "size_ratio_twn": round(rows[2][2], 2),
        "model": args.model,
        "width": width,
        "epochs": epochs,
        "quick": args.quick,
        "smoke": args.smoke,
    }
    return result


if __name__ == "__main__":
    main()
