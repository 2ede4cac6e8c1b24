"""Low-rank decomposition on Fashion-MNIST: Tucker-2 on VGG-11-BN (width 0.5) and SVD on LeNet-300-100.

For each network: train it dense, decompose it, fine-tune briefly, and compare test accuracy, the params/MACs of
the decomposed layers, and (Tucker) CPU latency, timing the dense and decomposed models alternately in one
process. Prints a table and, as its last line, one JSON object with the keys of issue 6.

    python benchmarks/lowrank.py            # full run
    python benchmarks/lowrank.py --quick    # CPU-minutes version (subsets, fewer epochs)
    python benchmarks/lowrank.py --smoke    # seconds: VGG width 0.125, 128-image subsets, one epoch each
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from _seeds import add_seeds_arg, n_seeds, over_seeds  # noqa: E402
from torch import nn

from slimkit.data import load_dataset
from slimkit.lowrank import decompose
from slimkit.models import create_model
from slimkit.train import TrainConfig, evaluate, fit


def _train(model: nn.Module, data, *, epochs: int, lr: float, seed: int, teacher=None, alpha: float = 0.0) -> None:
    config = TrainConfig(epochs=epochs, lr=lr, batch_size=128, seed=seed, device="cpu", progress=False,
                         distill_alpha=alpha)
    fit(model, data.train, config, val_data=None, teacher=teacher)


def _accuracy(model: nn.Module, data) -> float:
    return 100.0 * evaluate(model, data.test, device="cpu")["accuracy"]


@torch.no_grad()
def _alternate_latency(a: nn.Module, b: nn.Module, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median ms of ``a`` and ``b`` on ``x``, timed alternately so machine load hits both alike."""
    a.eval()
    b.eval()
    for _ in range(5):
        a(x)
        b(x)
    times_a, times_b = [], []
    for _ in range(repeats):
        for model, times in ((a, times_a), (b, times_b)):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times_a), statistics.median(times_b)


def tucker_vgg(args: argparse.Namespace) -> dict:
    data = load_dataset("fashion_mnist", seed=args.seed, subset=args.subset)
    torch.manual_seed(args.seed)
    dense = create_model("vgg11_bn", in_channels=1, num_classes=10, width=args.vgg_width)
    t0 = time.perf_counter()
    _train(dense, data, epochs=args.vgg_epochs, lr=0.05, seed=args.seed)
    train_s = time.perf_counter() - t0
    acc_dense = _accuracy(dense, data)

    model = copy.deepcopy(dense)
    x1 = data.example_inputs(1)
    # Tucker-2 on every 3x3 conv but the first (1 input channel: nothing to factor), ranks allocated globally
    # by singular-value energy per MAC under a whole-model MACs budget
    rule = {"rank": args.tucker_rank} if args.tucker_rank is not None else {"target_macs": args.tucker_target}
    report = decompose(model, x1, method="tucker", ignore=("features.0",), **rule)
    acc_decomposed = _accuracy(model, data)
    t0 = time.perf_counter()
    _train(model, data, epochs=args.finetune_epochs, lr=0.01, seed=args.seed + 1, teacher=dense, alpha=0.5)
    finetune_s = time.perf_counter() - t0
    acc_finetuned = _accuracy(model, data)

    latency = {}
    for batch in (1, 32):
        x = data.example_inputs(batch)
        latency[batch] = _alternate_latency(dense, model, x, args.repeats)
    print(report.table())
    print(f"\nTucker-2 VGG-11-BN x{args.vgg_width}: dense {acc_dense:.2f}% -> decomposed {acc_decomposed:.2f}% -> "
          f"fine-tuned {acc_finetuned:.2f}%  (train {train_s:.0f}s, fine-tune {finetune_s:.0f}s)")
    for batch, (ms_dense, ms_dec) in latency.items():
        print(f"  CPU latency batch {batch:>2}: dense {ms_dense:.2f} ms, decomposed {ms_dec:.2f} ms, "
              f"speedup x{ms_dense / ms_dec:.2f}")
    ms_dense, ms_dec = latency[args.latency_batch]
    return {
        "tucker_macs_reduction": round(report.layer_macs_reduction, 3),  # decomposed layers alone
        # whole model (every Linear/Conv2d MAC; every parameter), beside the per-layer figure
        "tucker_model_macs": [report.macs_before, report.macs_after],
        "tucker_model_macs_reduction": round(report.macs_before / report.macs_after, 3),
        "tucker_model_params": [report.params_before, report.params_after],
        "tucker_acc_dense": round(acc_dense, 2),
        "tucker_acc_finetuned": round(acc_finetuned, 2),
        "tucker_acc_drop": round(acc_dense - acc_finetuned, 4),
        "tucker_cpu_speedup": round(ms_dense / ms_dec, 3),
    }


def svd_lenet(args: argparse.Namespace) -> dict:
    data = load_dataset("fashion_mnist", seed=args.seed, subset=args.lenet_subset)
    torch.manual_seed(args.seed)
    dense = create_model("lenet300", in_channels=1, num_classes=10)
    _train(dense, data, epochs=args.lenet_epochs, lr=0.05, seed=args.seed)
    acc_dense = _accuracy(dense, data)
    model = copy.deepcopy(dense)
    report = decompose(model, data.example_inputs(1), method="svd", target_params=args.svd_target)
    acc_decomposed = _accuracy(model, data)
    _train(model, data, epochs=args.finetune_epochs, lr=0.01, seed=args.seed + 1, teacher=dense, alpha=0.5)
    acc_finetuned = _accuracy(model, data)
    print(report.table())
    print(f"\nSVD LeNet-300-100: dense {acc_dense:.2f}% -> decomposed {acc_decomposed:.2f}% -> "
          f"fine-tuned {acc_finetuned:.2f}%")
    return {
        "svd_params_reduction": round(report.layer_params_reduction, 3),  # decomposed layers alone (fc1)
        "svd_model_params": [report.params_before, report.params_after],
        "svd_model_params_reduction": round(report.params_before / report.params_after, 3),
        "svd_acc_dense": round(acc_dense, 2),
        "svd_acc_finetuned": round(acc_finetuned, 2),
        "svd_acc_drop": round(acc_dense - acc_finetuned, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="subsets and fewer epochs (CPU minutes)")
    parser.add_argument("--smoke", action="store_true", help="128-image subsets, one epoch each (seconds)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (seeds run are seed..seed+N-1)")
    add_seeds_arg(parser)
    parser.add_argument("--tucker-target", type=float, default=0.45, help="VGG MACs afterwards (fraction)")
    parser.add_argument("--tucker-rank", default=None, help="instead of the MACs target: 'vbmf' or an integer")
    parser.add_argument("--svd-target", type=float, default=0.35, help="LeNet params afterwards (fraction)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: on a shared machine more threads wait on each other)")
    parser.add_argument("--latency-batch", type=int, default=32, choices=(1, 32), help="batch of the headline speedup")
    args = parser.parse_args()
    if args.tucker_rank not in (None, "vbmf"):
        args.tucker_rank = int(args.tucker_rank)
    torch.set_num_threads(args.threads)
    args.vgg_width = 0.125 if args.smoke else 0.5
    if args.smoke:
        args.subset, args.vgg_epochs, args.lenet_epochs, args.finetune_epochs, args.repeats = 128, 1, 1, 1, 2
        args.lenet_subset = 128
    elif args.quick:
        args.subset, args.vgg_epochs, args.lenet_epochs, args.finetune_epochs, args.repeats = 4000, 2, 3, 1, 20
        args.lenet_subset = 4000
    else:  # 6k-image subsets (train and test) keep the VGG part to CPU minutes on a shared 2-core machine
        args.subset, args.vgg_epochs, args.lenet_epochs, args.finetune_epochs, args.repeats = 6000, 3, 5, 1, 30
        args.lenet_subset = None  # LeNet is cheap: all 54k training images
    first = args.seed

    def run(seed: int) -> dict:
        # a seed changes the initial weights, the data order and the subset drawn (as --seed always has)
        args.seed = first + seed
        torch.manual_seed(args.seed)
        return {**tucker_vgg(args), **svd_lenet(args), "smoke": args.smoke}

    keys = ["tucker_acc_dense", "tucker_acc_finetuned", "tucker_cpu_speedup", "svd_acc_dense", "svd_acc_finetuned"]
    rows, summary = over_seeds(n_seeds(args), run, keys, effects=["tucker_acc_drop", "svd_acc_drop"], digits=2,
                               first=args.first_seed)
    print()
    print(json.dumps({**rows[0], **summary}))


if __name__ == "__main__":
    main()
