"""int8 post-training quantization of a zoo CNN on Fashion-MNIST, executed by ONNX Runtime's integer kernels.

Trains the CNN briefly, quantizes it with ``slimkit.quantize(Int8Config(...))`` calibrated on a few training
batches, exports the int8 QDQ ONNX model and reports the integer model's own test accuracy. Latency: the int8
ONNX Runtime model against both fp32 paths (PyTorch eager and ONNX Runtime fp32, whichever is faster is the
baseline), timed alternately in one process, one thread each, medians.

    python benchmarks/int8_ptq.py            # full: whole training set, 2 epochs, whole test set
    python benchmarks/int8_ptq.py --quick    # CPU minutes: 6k training images, 1 epoch, 2k test images
    python benchmarks/int8_ptq.py --smoke    # seconds: width 0.125, 128 images, 1 epoch, 1 calibration batch

Last line: JSON with acc_fp32, acc_int8, cpu_speedup_bs1, cpu_speedup_bs16 (and more).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _seeds import add_seeds_arg, seeded_result  # noqa: E402

from slimkit.data import load_dataset, make_loader  # noqa: E402
from slimkit.export import export_onnx  # noqa: E402
from slimkit.models import create_model  # noqa: E402
from slimkit.quant import (  # noqa: E402
    Int8Config,
    IntegerModel,
    export_onnx_int8,
    fold_batchnorm,
    quantize,
)
from slimkit.train import TrainConfig, evaluate, fit  # noqa: E402


def time_alternately(fns: dict[str, Callable[[], object]], *, rounds: int, inner: int) -> dict[str, float]:
    """Median milliseconds per call of each function, measured in interleaved rounds (fair under noisy load)."""
    for fn in fns.values():  # warm-up
        for _ in range(5):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[name].append((time.perf_counter() - start) * 1000 / inner)
    return {name: statistics.median(v) for name, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few CPU minutes")
    parser.add_argument("--smoke", action="store_true", help="seconds: the code path on a tiny model and data")
    parser.add_argument("--model", default="vgg11_bn", help="zoo CNN")
    parser.add_argument("--width", type=float, default=None, help="zoo width multiplier (1.0; 0.125 with --smoke)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="threads for every latency path")
    parser.add_argument("--calibration-batches", type=int, default=None, help="default 8; 1 with --smoke")
    add_seeds_arg(parser)
    args = parser.parse_args()
    keys, drops = ["acc_fp32", "acc_int8", "cpu_speedup_bs1", "cpu_speedup_bs16"], {"acc_drop_points": ("acc_fp32", "acc_int8")}
    result = seeded_result(args, lambda seed: _run(args, seed), keys, drops)
    print(json.dumps(result))


def _run(args: argparse.Namespace, seed: int) -> dict:
    """One seed of the benchmark; returns its figures (main prints the seeds' means)."""
    torch.manual_seed(seed)
    args.width = args.width or (0.125 if args.smoke else 1.0)
    args.calibration_batches = args.calibration_batches or (1 if args.smoke else 8)

    subset = 128 if args.smoke else 6_000 if args.quick else None
    epochs = args.epochs or (1 if args.quick or args.smoke else 2)
    data = load_dataset("fashion_mnist", subset=subset, seed=0)
    test = data.test
    if args.quick:
        test = torch.utils.data.Subset(data.test, range(min(2000, len(data.test))))
    model = create_model(args.model, in_channels=data.in_channels, num_classes=data.num_classes, width=args.width)
    t0 = time.perf_counter()
    fit(model, data.train, TrainConfig(epochs=epochs, lr=0.02, warmup_epochs=0.2, batch_size=128, seed=seed,
                                       device="cpu", progress=False))
    train_s = time.perf_counter() - t0
    model.eval()
    acc_fp32 = evaluate(model, test)["accuracy"]

    calibration = []
    for i, batch in enumerate(make_loader(data.train, batch_size=128, shuffle=True, seed=1)):
        if i >= args.calibration_batches:
            break
        calibration.append(batch)
    example = (calibration[0][0][:1],)
    first = next(fqn for fqn, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    fp32_model = copy.deepcopy(model)
    fold_batchnorm(fp32_model)  # exact; the fastest eager fp32 path has no separate BatchNorm
    # the first conv (1 input channel) is kept in float: ORT's int8 kernel for it is slower than fp32
    report = quantize(model, Int8Config(ignore=(first,), observer="percentile"), calibration_data=calibration)
    print(report.table())
    acc_sim = evaluate(model, test)["accuracy"]

    with tempfile.TemporaryDirectory() as tmp:
        int8_path = export_onnx_int8(model, example, Path(tmp) / "int8.onnx", calibration_data=calibration,
                                     observer="percentile")
        fp32_path = export_onnx(fp32_model, example, Path(tmp) / "fp32.onnx")
        int8 = IntegerModel(int8_path, threads=args.threads)
        ort_fp32 = IntegerModel(fp32_path, threads=args.threads)
        loader = make_loader(test, batch_size=256, shuffle=False)
        acc_int8 = int8.evaluate(loader)["accuracy"]
        acc_ort_fp32 = ort_fp32.evaluate(loader)["accuracy"]
        kernels = int8.kernel_ops()
        size_fp32, size_int8 = fp32_path.stat().st_size, int8_path.stat().st_size

        torch.set_num_threads(args.threads)
        xs = torch.cat([x for x, _ in calibration])
        latency = {}
        for bs in (1, 16):
            x = xs[:bs].contiguous()
            with torch.inference_mode():
                latency[bs] = time_alternately(
                    {"torch_fp32": lambda x=x: fp32_model(x), "ort_fp32": lambda x=x: ort_fp32(x),
                     "ort_int8": lambda x=x: int8(x)},
                    rounds=1 if args.smoke else 15 if args.quick else 40, inner=1 if args.smoke else 10,
                )

    print(f"\n{args.model} on Fashion-MNIST ({len(test)} test images), trained {epochs} epochs in {train_s:.0f}s")
    print(f"int8 kernels run by ONNX Runtime: {kernels}")
    print(f"{'':<24}{'accuracy':>10}")
    print(f"{'fp32 (PyTorch)':<24}{100 * acc_fp32:>9.2f}%")
    print(f"{'fp32 (ONNX Runtime)':<24}{100 * acc_ort_fp32:>9.2f}%")
    print(f"{'int8 simulated (torch)':<24}{100 * acc_sim:>9.2f}%")
    print(f"{'int8 ONNX Runtime':<24}{100 * acc_int8:>9.2f}%")
    print(f"\nlatency, ms (median, {args.threads} thread(s), alternating)")
    print(f"{'batch':<8}{'torch fp32':>12}{'ORT fp32':>12}{'ORT int8':>12}{'speedup':>10}  baseline")
    speedups = {}
    for bs, lat in latency.items():
        base_name = min(("torch_fp32", "ort_fp32"), key=lambda k: lat[k])
        speedups[bs] = lat[base_name] / lat["ort_int8"]
        print(f"{bs:<8}{lat['torch_fp32']:>12.3f}{lat['ort_fp32']:>12.3f}{lat['ort_int8']:>12.3f}"
              f"{speedups[bs]:>9.2f}x  {base_name}")
    result = {
        "acc_fp32": round(acc_fp32, 4),
        "acc_int8": round(acc_int8, 4),
        "acc_drop_points": round(100 * (acc_fp32 - acc_int8), 2),
        "cpu_speedup_bs1": round(speedups[1], 2),
        "cpu_speedup_bs16": round(speedups[16], 2),
        "latency_ms": {str(bs): {k: round(v, 4) for k, v in lat.items()} for bs, lat in latency.items()},
        "model": args.model,
        "onnx_bytes_fp32": size_fp32,
        "onnx_bytes_int8": size_int8,
        "quick": args.quick,
        "smoke": args.smoke,
    }
    return result


if __name__ == "__main__":
    main()
