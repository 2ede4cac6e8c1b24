"""Deep Compression (Han et al. 2016) on Fashion-MNIST: prune -> k-means share -> Huffman, into a .slim file.

For LeNet-300-100 and LeNet-5 (Caffe variant, 431K params):

1. train the dense fp32 model (the reference accuracy);
2. magnitude pruning to the per-layer ratios of the paper, in rounds of increasing ratio, fine-tuning after
   each round with the pruned weights held at zero (a mask re-applied after every optimizer step);
3. k-means weight sharing (linear init) at the given bits per layer, then codebook fine-tuning (indices fixed);
4. ``save_compressed`` -> the .slim file (sparse index gaps + codebook indices, both Huffman-coded);
5. ``load_compressed`` and evaluate the decoded model: the accuracy reported is the loaded file's own.

``ratio`` = fp32 bytes of all the model's tensors / bytes of the whole .slim file (header and checksum
included). ``acc_drop`` is in percentage points (dense test accuracy - loaded model's test accuracy).

    python benchmarks/deep_compression.py [--quick]
    python benchmarks/deep_compression.py --smoke    # seconds: 128 images, one epoch per stage, one round
    python benchmarks/deep_compression.py --models lenet5 --fc1-ratio 0.92   # LeNet-5's fc1 ratio set by hand
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _seeds import add_seeds_arg, n_seeds, over_seeds, summarize, versions  # noqa: E402

from slimkit.data import load_dataset  # noqa: E402
from slimkit.models import create_model  # noqa: E402
from slimkit.quant.kmeans import share_weights  # noqa: E402
from slimkit.state import load_compressed, save_compressed  # noqa: E402
from slimkit.train import Hook, TrainConfig, evaluate, fit  # noqa: E402

# per-layer pruning ratios (fraction of weights removed) and k-means bits, after Han et al. Tables 1-4
PLANS = {
    "lenet300": {
        "ratios": {"fc1": 0.92, "fc2": 0.91, "fc3": 0.74},
        "bits": {"fc1": 4, "fc2": 5, "fc3": 6},
        "dense_epochs": 12, "round_epochs": 3, "final_epochs": 6, "codebook_epochs": 2, "lr": 0.05,
        "rounds": (0.5, 0.8, 1.0),
    },
    "lenet5": {
        "ratios": {"features.0": 0.34, "features.3": 0.88, "classifier.0": 0.91, "classifier.2": 0.81},
        "bits": {"features.0": 8, "features.3": 5, "classifier.0": 4, "classifier.2": 5},
        "dense_epochs": 6, "round_epochs": 2, "final_epochs": 3, "codebook_epochs": 1, "lr": 0.05,
        "rounds": (0.6, 1.0),
    },
}


class KeepPruned(Hook):
    """Re-zero the pruned weights after every optimizer step (masks fixed during fine-tuning)."""

    def __init__(self, masks: dict[nn.Parameter, torch.Tensor]) -> None:
        self.masks = masks

    def after_step(self, state) -> None:  # noqa: ANN001 - TrainState
        with torch.no_grad():
            for param, mask in self.masks.items():
                param.mul_(mask.to(param.device))


def magnitude_masks(model: nn.Module, ratios: dict[str, float], scale: float) -> dict[nn.Parameter, torch.Tensor]:
    """Per-layer magnitude pruning to ``scale * ratio``; zeroes the weights and returns the keep-masks."""
    masks = {}
    with torch.no_grad():
        for fqn, ratio in ratios.items():
            weight = model.get_submodule(fqn).weight
            k = int(weight.numel() * ratio * scale)
            if k == 0:
                continue
            cut = weight.abs().flatten().kthvalue(k).values
            mask = (weight.abs() > cut).float()
            weight.mul_(mask)
            masks[weight] = mask
    return masks


def run_model(name: str, splits, quick: bool, folder: Path, log, smoke: bool = False, seed: int = 0,  # noqa: ANN001
              ratios: dict[str, float] | None = None, on_validation: bool = False) -> dict:
    """One seed of one model. ``on_validation`` evaluates every stage on the validation split (for choices)."""
    plan = {**PLANS[name], "ratios": {**PLANS[name]["ratios"], **(ratios or {})}}
    test = splits.val if on_validation else splits.test
    scale = 0.0 if smoke else 0.34 if quick else 1.0
    epochs = {
        k: max(1, round(plan[k] * scale)) for k in ("dense_epochs", "round_epochs", "final_epochs", "codebook_epochs")
    }
    # fraction of the final ratios reached in each round
    rounds = (1.0,) if smoke else (0.6, 1.0) if quick else plan["rounds"]

    def train(model: nn.Module, n: int, lr: float, hooks=(), weight_decay: float = 5e-4) -> None:
        cfg = TrainConfig(epochs=n, lr=lr, batch_size=128, weight_decay=weight_decay, progress=False, device="cpu",
                          seed=seed)
        fit(model, splits.train, cfg, hooks=hooks)

    torch.manual_seed(seed)
    model = create_model(name, in_channels=1, num_classes=10)
    t0 = time.perf_counter()
    train(model, epochs["dense_epochs"], plan["lr"])
    acc_dense = evaluate(model, test)["accuracy"]
    log(f"{name}: dense {acc_dense:.4f} ({time.perf_counter() - t0:.0f}s)")

    for fraction in rounds:
        masks = magnitude_masks(model, plan["ratios"], fraction)
        train(model, epochs["round_epochs"], plan["lr"] / 5, hooks=[KeepPruned(masks)])
        log(f"{name}: pruned to {fraction:.0%} of target: {evaluate(model, test)['accuracy']:.4f}")
    train(model, epochs["final_epochs"], plan["lr"] / 5, hooks=[KeepPruned(masks)])  # recover at full sparsity
    acc_pruned = evaluate(model, test)["accuracy"]

    share_weights(model, bits=5, layer_bits=plan["bits"])
    acc_shared = evaluate(model, test)["accuracy"]
    train(model, epochs["codebook_epochs"], plan["lr"] / 25, weight_decay=0.0)
    acc_finetuned = evaluate(model, test)["accuracy"]

    path = folder / f"{name}.slim"
    report = save_compressed(model, path, metadata={"benchmark": "deep_compression", "model": name})
    loaded = load_compressed(path)
    acc_loaded = evaluate(loaded, test)["accuracy"]
    log(report.table())
    stages = report.stage_ratios()
    return {
        "acc_dense": acc_dense, "acc_pruned": acc_pruned, "acc_shared": acc_shared,
        "acc_codebook_finetuned": acc_finetuned, "acc_loaded": acc_loaded,
        "acc_drop": 100 * (acc_dense - acc_loaded), "ratio": report.ratio,
        "ratio_pruning": stages["pruning"], "ratio_quantization": stages["quantization"],
        "ratio_huffman": stages["huffman"], "file_bytes": report.file_bytes, "fp32_bytes": report.original_bytes,
        "density": sum(lay.nonzero for lay in report.layers) / sum(lay.weights for lay in report.layers),
        # whole model (every weight and bias, codebooks excluded), beside the per-layer table
        "params": sum(lay.weights for lay in report.layers if not lay.name.startswith("__slimkit__")),
        "nonzero_params": sum(lay.nonzero for lay in report.layers if not lay.name.startswith("__slimkit__")),
        "seconds": time.perf_counter() - t0,
    }


def select_fc1(splits, quick: bool, folder: Path, log, smoke: bool, candidates: list[float],  # noqa: ANN001
               tolerance: float) -> tuple[float, dict[str, float]]:
    """LeNet-5's fc1 (classifier.0) ratio chosen on the validation split, seed 0: the largest candidate whose
    validation drop (dense - loaded, points) is at most ``tolerance``; the smallest candidate if none is."""
    drops = {}
    for ratio in sorted(candidates):
        r = run_model("lenet5", splits, quick, folder, log, smoke, ratios={"classifier.0": ratio}, on_validation=True)
        drops[str(ratio)] = round(r["acc_drop"], 2)
        log(f"validation: lenet5 fc1 ratio {ratio}: drop {r['acc_drop']:.2f} points, ratio {r['ratio']:.1f}x")
    ok = [float(r) for r, d in drops.items() if d <= tolerance]
    return (max(ok) if ok else min(candidates)), drops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a third of the epochs, two pruning rounds")
    parser.add_argument("--smoke", action="store_true", help="128 images, one epoch per stage, one round (seconds)")
    parser.add_argument("--models", nargs="+", default=list(PLANS), choices=list(PLANS))
    add_seeds_arg(parser)
    parser.add_argument("--select-fc1", type=float, nargs="+", default=None, metavar="RATIO",
                        help="choose LeNet-5's fc1 pruning ratio among these on the validation split (seed 0)")
    parser.add_argument("--select-tolerance", type=float, default=0.5,
                        help="largest validation drop (points) a chosen fc1 ratio may cost")
    parser.add_argument("--fc1-ratio", type=float, default=None, metavar="RATIO",
                        help="LeNet-5's fc1 pruning ratio, e.g. one chosen earlier on validation (default: the plan's)")
    args = parser.parse_args()
    if args.fc1_ratio is not None and args.select_fc1:
        parser.error("--fc1-ratio and --select-fc1 both set LeNet-5's fc1 ratio: give one")
    if args.fc1_ratio is not None and not 0.0 <= args.fc1_ratio < 1.0:
        parser.error(f"--fc1-ratio must be in [0, 1), got {args.fc1_ratio}")
    torch.set_num_threads(1)
    splits = load_dataset("fashion_mnist", seed=0, subset=128 if args.smoke else None)
    log = lambda m: print(m, flush=True)  # noqa: E731
    n = n_seeds(args)
    results, out = {}, {"quick": args.quick, "smoke": args.smoke}
    keys = ["acc_dense", "acc_loaded", "acc_drop", "ratio", "ratio_pruning", "ratio_quantization", "ratio_huffman",
            "density", "file_bytes", "fp32_bytes", "params", "nonzero_params"]
    with tempfile.TemporaryDirectory() as tmp:
        ratios = {}
        if args.fc1_ratio is not None:
            ratios["lenet5"] = {"classifier.0": args.fc1_ratio}
        if args.select_fc1 and "lenet5" in args.models:
            chosen, drops = select_fc1(splits, args.quick, Path(tmp), log, args.smoke, args.select_fc1,
                                       args.select_tolerance)
            ratios["lenet5"] = {"classifier.0": chosen}
            out["lenet5_fc1_ratio_validation_drops"] = drops
            log(f"chosen on validation: lenet5 fc1 ratio {chosen}")
        for name in args.models:
            log(f"== {name}: {n} seed(s)")
            rows, results[name] = over_seeds(
                n, lambda seed, name=name: run_model(name, splits, args.quick, Path(tmp), log, args.smoke, seed,
                                                     ratios.get(name)),
                ["acc_dense", "acc_loaded", "ratio"], effects=["acc_drop"], first=args.first_seed)
            results[name].update(summarize(rows, keys))  # the other figures' means and stds as well
            results[name]["fc1_ratio"] = {**PLANS[name]["ratios"], **ratios.get(name, {})}
    head = f"{'model':<10}{'dense':>8}{'loaded':>8}{'drop pt':>14}"
    head += f"{'P':>7}{'P+Q':>7}{'P+Q+H':>7}{'file':>7}{'bytes':>8}{'params':>9}{'nonzero':>9}"
    print(head)
    for name, r in results.items():
        print(
            f"{name:<10}{r['acc_dense']:>8.4f}{r['acc_loaded']:>8.4f}{r['acc_drop']:>7.2f}+-{r['acc_drop_std']:<5.2f}"
            f"{r['ratio_pruning']:>6.1f}x{r['ratio_quantization']:>6.1f}x{r['ratio_huffman']:>6.1f}x"
            f"{r['ratio']:>6.1f}x{r['file_bytes']:>8.0f}{r['params']:>9.0f}{r['nonzero_params']:>9.0f}"
        )
    for name, r in results.items():
        for field in keys:
            key = {"acc_drop": "acc_drop", "ratio": "ratio"}.get(field, field)
            out[f"{key}_{name}"] = r[field]
            if f"{field}_std" in r:
                out[f"{key}_{name}_std"] = r[f"{field}_std"]
        out[f"acc_drop_{name}_within_std"] = r["acc_drop_within_std"]
        out[f"acc_drop_{name}_seeds"] = r["acc_drop_seeds"]
        out[f"ratios_{name}"] = r["fc1_ratio"]
    out["seeds"] = n
    out["versions"] = versions()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
