"""Searched per-layer ratios (``search_ratios``) vs uniform and global L1 pruning at equal MACs, Fashion-MNIST.

Models from slimkit's zoo: VGG-11-BN (width 0.25), ResNet-20, MobileNetV2 (width 0.5), each trained dense, then
pruned to 2x and 3x fewer MACs by: uniform (the same ratio in every layer, L1; fine-tuned with two seeds to
measure the seed spread), global L1 (normalized per group, one ranking), and the search (candidates scored after
BatchNorm recalibration on training images, accuracy on a held-out slice of the training data; the best
``--top-k`` fine-tuned briefly, the one with the best held-out accuracy wins). Every method gets the same final
fine-tuning (``--finetune-epochs``) and is reported on the test set. ``--scratch`` adds the "Rethinking" control:
the searched architecture trained from scratch for dense + fine-tuning epochs.

    python benchmarks/auto_ratios.py            # full Fashion-MNIST
    python benchmarks/auto_ratios.py --quick    # 4000 training images, few epochs (CPU minutes)
    python benchmarks/auto_ratios.py --smoke    # 128 images, one model, tiny search (seconds)

Last line: one JSON object with keys such as resnet20_3x_acc_uniform, resnet20_3x_acc_uniform_seed_spread,
resnet20_3x_acc_global, resnet20_3x_acc_search, resnet20_3x_search_s (and _acc_scratch with --scratch).
"""

from __future__ import annotations

import argparse
import copy
import json
import time

from _fmnist import add_common_args, train_dense

import slimkit
from slimkit.prune.search import SearchConfig, search_ratios

MODELS = {"vgg11_bn": 0.25, "resnet20": 1.0, "mobilenetv2": 0.5}
SHORT = {"vgg11_bn": "vgg11", "resnet20": "resnet20", "mobilenetv2": "mobilenetv2"}


def _finetune(model, dense, epochs: int, seed: int = 0) -> float:
    if epochs:
        slimkit.fit(model, dense.data.train, {**dense.train, "epochs": epochs, "seed": seed, "lr": dense.train["lr"] / 4})
    model.eval()
    return slimkit.evaluate(model, dense.data.test)["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--models", default=None, help="comma-separated subset of " + ",".join(MODELS))
    parser.add_argument("--budgets", default="2,3", help="MACs reduction factors")
    parser.add_argument("--epochs", type=int, default=None, help="dense training epochs")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="fine-tuning epochs, every method")
    parser.add_argument("--candidates", type=int, default=None, help="ratio vectors sampled by the search")
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--scratch", action="store_true", help="also train the searched architecture from scratch")
    args = parser.parse_args()
    smoke = args.smoke
    epochs = args.epochs or (1 if smoke else 3 if args.quick else 10)
    ft_epochs = args.finetune_epochs if args.finetune_epochs is not None else (1 if smoke or args.quick else 3)
    n_cand = args.candidates or (3 if smoke else 16 if args.quick else 50)
    models = args.models.split(",") if args.models else (["resnet20"] if smoke else list(MODELS))
    budgets = [float(b) for b in args.budgets.split(",")]
    out: dict[str, float | bool] = {}
    for arch in models:
        dense = train_dense(args, arch, width=MODELS[arch], epochs=epochs, lr=0.05, weight_decay=5e-4)
        key0 = SHORT[arch]
        out[f"{key0}_acc_dense"] = round(dense.acc_dense, 4)
        for b in budgets:
            key = f"{key0}_{b:g}x"
            accs = []
            for seed in (0, 1):
                m = copy.deepcopy(dense.model)
                slimkit.prune_channels(m, dense.example, scope="local", importance="l1", macs_reduction=b,
                                       allow_partial=True)
                accs.append(_finetune(m, dense, ft_epochs, seed))
            out[f"{key}_acc_uniform"] = round(sum(accs) / 2, 4)
            out[f"{key}_acc_uniform_seed_spread"] = round(abs(accs[0] - accs[1]), 4)
            m = copy.deepcopy(dense.model)
            slimkit.prune_channels(m, dense.example, scope="global", importance="l1", normalize="mean",
                                   macs_reduction=b, allow_partial=True)
            out[f"{key}_acc_global"] = round(_finetune(m, dense, ft_epochs), 4)
            m = copy.deepcopy(dense.model)
            t0 = time.perf_counter()
            calib = 64 if smoke else 256
            val = 64 if smoke else 500
            cfg = SearchConfig(macs_reduction=b, candidates=n_cand, top_k=args.top_k, calib_samples=calib,
                               val_samples=val, progress=False, max_ratio=0.8)
            _, held = _held_split(dense.data.train, cfg)

            def short_ft(pruned, held=held, dense=dense):  # the brief fine-tune of the top-k, scored held-out
                slimkit.fit(pruned, dense.data.train, {**dense.train, "epochs": 1, "lr": dense.train["lr"] / 4})
                return slimkit.evaluate(pruned, held)["accuracy"]

            res = search_ratios(m, dense.example, dense.data.train, cfg, finetune=short_ft if not smoke else None)
            out[f"{key}_search_s"] = round(time.perf_counter() - t0, 1)
            out[f"{key}_acc_search"] = round(_finetune(m, dense, ft_epochs), 4)
            out[f"{key}_macs_reduction_search"] = round(res.report.macs_reduction, 3)
            if args.scratch:
                fresh = slimkit.create_model(arch, in_channels=1, width=MODELS[arch])
                probe = copy.deepcopy(fresh)
                search_space_apply(probe, dense.example, res)
                slimkit.fit(probe, dense.data.train, {**dense.train, "epochs": epochs + ft_epochs})
                probe.eval()
                out[f"{key}_acc_scratch"] = round(slimkit.evaluate(probe, dense.data.test)["accuracy"], 4)
            print(json.dumps({k: v for k, v in out.items() if k.startswith(key)}), flush=True)
    wins = 0
    for arch in models:
        k = f"{SHORT[arch]}_3x"
        if f"{k}_acc_search" in out and out[f"{k}_acc_search"] - out[f"{k}_acc_uniform"] > out[f"{k}_acc_uniform_seed_spread"]:
            wins += 1
    out["search_wins_3x"] = wins
    out["smoke"] = smoke
    print(json.dumps(out))


def _held_split(data, cfg):
    from slimkit.prune.search import _split
    return _split(data, cfg)


def search_space_apply(model, example, res) -> None:
    """Apply the searched per-group ratios to a freshly initialized model of the same architecture."""
    slimkit.prune_channels(model, example, scope="local", ratio=0.0, max_group_ratio=0.9,
                           ratios={n: r for n, r in res.best.ratios.items() if r > 0})


if __name__ == "__main__":
    main()
