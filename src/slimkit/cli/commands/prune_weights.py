"""``slimkit prune-weights MODEL_FILE --sparsity 0.9 --out OUT``: unstructured magnitude pruning of a saved model.

Without ``--data`` it prunes one shot and saves the model with zeros (plus, with ``--sparse-out``, a sparse copy of
the weights). With ``--data`` it reports accuracy before and after and can fine-tune (``--epochs``) with the masks
kept, either after one-shot pruning or while raising the sparsity along the AGP schedule (``--method agp``).
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from slimkit.cli.from_config import add_config_arguments, config_from_args
from slimkit.cli.inputs import (
    add_factory_argument,
    check_forward,
    config_from_flags,
    data_example,
    open_model,
)
from slimkit.prune.unstructured.magnitude import WeightPruneConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("prune-weights", help="zero the smallest weights of a saved model (unstructured)")
    p.add_argument("model_file", help="a model saved by slimkit (train / save_model)")
    add_factory_argument(p)
    add_config_arguments(p, WeightPruneConfig)
    p.add_argument("--method", default="magnitude", choices=["magnitude", "agp"],
                   help="magnitude: prune at once; agp: prune gradually while fine-tuning (needs --data, --epochs)")
    p.add_argument("--data", default=None, help="dataset to evaluate on and fine-tune with (e.g. fashion_mnist)")
    p.add_argument("--epochs", type=int, default=0, help="fine-tuning epochs with the masks kept (needs --data)")
    p.add_argument("--lr", type=float, default=0.01, help="fine-tuning learning rate")
    p.add_argument("--subset", type=int, default=None, help="use only N samples per split (quick runs)")
    p.add_argument("--out", required=True, help="where to save the pruned model (.pt)")
    p.add_argument("--sparse-out", default=None, help="also write the weights as CSR indices + values here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from slimkit.cli.outputs import ensure_writable
    from slimkit.core.errors import ConfigError
    from slimkit.core.io import atomic_write
    from slimkit.core.modules import module_names
    from slimkit.prune.unstructured import (
        AGPHook,
        MaskHook,
        agp_plan,
        make_permanent,
        prune_weights,
        sparse_size_bytes,
        sparsity_report,
        to_sparse_state_dict,
    )
    from slimkit.state import save_model

    prune_config = config_from_args(WeightPruneConfig, args)  # fail before loading
    ensure_writable(args.out)
    if args.sparse_out:
        ensure_writable(args.sparse_out, flag="--sparse-out")
    if (args.epochs or args.method == "agp") and not args.data:
        raise ConfigError("--data: fine-tuning (--epochs, --method agp) needs a dataset")
    if args.method == "agp" and args.epochs < 1:
        raise ConfigError("--epochs: --method agp prunes while fine-tuning; give --epochs >= 1")
    model = open_model(args.model_file, args)
    module_names(model, prune_config.ignore, field="--ignore")
    data = None
    metrics: dict[str, float] = {}
    if args.data:
        from slimkit.data import load_dataset
        from slimkit.train import evaluate

        data = load_dataset(args.data, subset=args.subset)
        check_forward(model, data_example(data), flag="--data", source=args.data)
        metrics["acc_dense"] = evaluate(model, data.test)["accuracy"]
    options = {f.name: getattr(prune_config, f.name) for f in fields(WeightPruneConfig)}
    if args.epochs:
        from slimkit.train import TrainConfig, fit

        config = config_from_flags(TrainConfig, {"--epochs": args.epochs, "--lr": args.lr})
        if args.method == "agp":
            steps = args.epochs * -(-len(data.train) // config.batch_size)
            start, events, frequency = agp_plan(steps)
            hook = AGPHook(start_step=start, num_steps=events, frequency=frequency, **options)
        else:
            prune_weights(model, **options)
            hook = MaskHook()
        fit(model, data.train, config, val_data=data.val, hooks=[hook])
    else:
        prune_weights(model, **options)
    report = sparsity_report(model, ignore=prune_config.ignore)
    sparse = to_sparse_state_dict(model, layout="csr")
    make_permanent(model)
    print(report.table())
    if data is not None:
        from slimkit.train import evaluate

        metrics["acc_pruned"] = evaluate(model, data.test)["accuracy"]
        print(f"test accuracy: dense {100 * metrics['acc_dense']:.2f}%  pruned {100 * metrics['acc_pruned']:.2f}%")
    save_model(model, args.out, metadata={"sparsity": report.sparsity, **metrics})
    print(f"sparsity {report.sparsity:.2%} ({report.compression:.1f}x fewer nonzero weights)  saved {args.out}")
    if args.sparse_out:
        atomic_write(args.sparse_out, lambda f: torch.save(sparse, f))
        print(f"sparse weights: {sparse_size_bytes(sparse)} bytes  saved {args.sparse_out}")
    return 0
