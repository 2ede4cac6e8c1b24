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
    """Fine-tune (the same schedule for every method: ``epochs`` at a quarter of the dense learning rate) and
    return the test accuracy."""
    if epochs:
        slimkit.fit(model, dense.data.train, {**dense.train, "epochs": epochs, "seed": seed, "lr": dense.train["lr"] / 4})
    model.eval()
    return slimkit.evaluate(model, dense.data.test)["accuracy"]


def _val(model, dense) -> float:
    model.eval()
    return slimkit.evaluate(model, dense.data.val)["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--models", default=None, help="comma-separated subset of " + ",".join(MODELS))
    parser.add_argument("--budgets", default=None, help="MACs reduction factors (default 2,3; 3 with --smoke)")
    parser.add_argument("--epochs", type=int, default=None, help="dense training epochs")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="fine-tuning epochs, every method")
    parser.add_argument("--candidates", type=int, default=None, help="ratio vectors sampled by the search")
    parser.add_argument("--generations", type=int, default=None, help="evolutionary rounds after sampling")
    parser.add_argument("--population", type=int, default=20, help="vectors scored per evolutionary round")
    parser.add_argument("--top-k", type=int, default=3, help="best candidates fine-tuned before choosing")
    parser.add_argument("--scratch", action="store_true", help="also train the searched architecture from scratch")
    parser.add_argument("--no-progressive", action="store_true", help="skip the progressive_prune row")
    args = parser.parse_args()
    smoke = args.smoke
    epochs = args.epochs or (1 if smoke else 3 if args.quick else 10)
    ft_epochs = args.finetune_epochs if args.finetune_epochs is not None else (1 if smoke or args.quick else 3)
    n_cand = args.candidates or (4 if smoke else 100 if args.quick else 300)
    generations = args.generations if args.generations is not None else (0 if smoke else 2 if args.quick else 4)
    models = args.models.split(",") if args.models else (["resnet20"] if smoke else list(MODELS))
    budgets = [float(b) for b in (args.budgets or ("3" if smoke else "2,3")).split(",")]
    out: dict[str, float | bool | str] = {}
    for arch in models:
        dense = train_dense(args, arch, width=MODELS[arch], epochs=epochs, lr=0.05, weight_decay=5e-4)
        key0 = SHORT[arch]
        out[f"{key0}_acc_dense"] = round(dense.acc_dense, 4)
        for b in budgets:
            key = f"{key0}_{b:g}x"
            accs, uniform_val = [], None
            for seed in (0, 1):
                m = copy.deepcopy(dense.model)
                rep = slimkit.prune_channels(m, dense.example, scope="local", importance="l1", macs_reduction=b,
                                             allow_partial=True)
                accs.append(_finetune(m, dense, ft_epochs, seed))
                if seed == 0:
                    uniform_val = _val(m, dense)
                    out[f"{key}_macs_reduction_uniform"] = round(rep.macs_reduction, 3)
            out[f"{key}_acc_uniform"] = round(sum(accs) / 2, 4)
            out[f"{key}_acc_uniform_seed_spread"] = round(abs(accs[0] - accs[1]), 4)
            m = copy.deepcopy(dense.model)
            slimkit.prune_channels(m, dense.example, scope="global", importance="l1", normalize="mean",
                                   macs_reduction=b, allow_partial=True)
            out[f"{key}_acc_global"] = round(_finetune(m, dense, ft_epochs), 4)

            # the search: fast scores (BN recalibrated on 512 training images, loss on 500 held-out training
            # images), then the top-k get exactly the fine-tuning every method gets (ft_epochs, seed 0) and the
            # one with the best validation accuracy is the result: its final model had the same fine-tuning as
            # uniform's; the other k-1 fine-tunes are search cost, counted in search_s
            m = copy.deepcopy(dense.model)
            t0 = time.perf_counter()
            cfg = SearchConfig(macs_reduction=b, candidates=n_cand, generations=generations,
                               population=args.population, parents=8, top_k=args.top_k,
                               calib_samples=64 if smoke else 512, val_samples=64 if smoke else 500,
                               tolerance=0.01, progress=False, max_ratio=0.8)
            tuned: list[tuple[float, dict, object]] = []

            def finetune_top(pruned, dense=dense, tuned=tuned):
                _finetune(pruned, dense, ft_epochs, seed=0)
                score = _val(pruned, dense)
                tuned.append((score, pruned))
                return score

            res = search_ratios(m, dense.example, dense.data.train, cfg, finetune=finetune_top)
            out[f"{key}_search_s"] = round(time.perf_counter() - t0, 1)
            winner = next(model for score, model in tuned if score == res.best.finetuned_score)
            winner.eval()
            out[f"{key}_acc_search"] = round(slimkit.evaluate(winner, dense.data.test)["accuracy"], 4)
            out[f"{key}_macs_reduction_search"] = round(res.report.macs_reduction, 3)
            out[f"{key}_search_candidates"] = len(res.candidates)
            out[f"{key}_search_origin"] = res.best.origin
            ranked = sorted(res.candidates, key=lambda c: -c.score)
            out[f"{key}_search_uniform_rank"] = next(i for i, c in enumerate(ranked) if c.origin == "uniform") + 1
            if not args.no_progressive:
                # accuracy-targeted: prune round by round (global L1, step 0.1 of the channels, back-off to
                # 0.025, ft_epochs per round) while the validation accuracy stays at uniform's at this budget
                m = copy.deepcopy(dense.model)
                prog = slimkit.progressive_prune(
                    m, dense.example, dense.data.train, dense.data.val, target_accuracy=min(uniform_val, _val(dense.model, dense)), step=0.1,
                    min_step=0.025, max_rounds=2 if smoke else 12, scope="global", importance="l1",
                    finetune={**dense.train, "epochs": ft_epochs, "lr": dense.train["lr"] / 4})
                out[f"{key}_acc_progressive"] = round(_finetune(m, dense, 0), 4)
                out[f"{key}_macs_reduction_progressive"] = round(prog.macs_reduction, 3)
                out[f"{key}_progressive_rounds"] = len(prog.trajectory) - 1
            if args.scratch:
                fresh = slimkit.create_model(arch, in_channels=1, width=MODELS[arch])
                search_space_apply(fresh, dense.example, res)
                slimkit.fit(fresh, dense.data.train, {**dense.train, "epochs": epochs + ft_epochs})
                fresh.eval()
                out[f"{key}_acc_scratch"] = round(slimkit.evaluate(fresh, dense.data.test)["accuracy"], 4)
            print(json.dumps({k: v for k, v in out.items() if k.startswith(key)}), flush=True)
    wins = 0
    for arch in models:
        k = f"{SHORT[arch]}_3x"
        if f"{k}_acc_search" in out and out[f"{k}_acc_search"] - out[f"{k}_acc_uniform"] > out[f"{k}_acc_uniform_seed_spread"]:
            wins += 1
    out["search_wins_3x"] = wins
    out["smoke"] = smoke
    print(json.dumps(out))


def search_space_apply(model, example, res) -> None:
    """Apply the searched per-group ratios to a freshly initialized model of the same architecture."""
    slimkit.prune_channels(model, example, scope="local", ratio=0.0, max_group_ratio=0.9,
                           ratios={n: r for n, r in res.best.ratios.items() if r > 0})


if __name__ == "__main__":
    main()
