"""``slimkit train`` and ``slimkit eval``: train a zoo model on a dataset / evaluate a saved model."""

from __future__ import annotations

import argparse

from slimkit.cli.from_config import add_config_arguments, config_from_args
from slimkit.cli.inputs import add_factory_argument, check_forward, data_example, open_model
from slimkit.train.config import TrainConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a zoo model and save it")
    p.add_argument("model", help="zoo name or package.module:factory")
    p.add_argument("--data", default="fashion_mnist", help="dataset name (default fashion_mnist)")
    p.add_argument("--width", type=float, default=None, help="width multiplier")
    add_config_arguments(p, TrainConfig, exclude=("distill_alpha", "distill_temperature"),  # no teacher here
                         defaults={"epochs": 3})
    p.add_argument("--subset", type=int, default=None, help="use only N samples per split (quick runs)")
    p.add_argument("--out", required=True, help="where to save the trained model (.pt)")
    p.add_argument("--checkpoint-dir", default=None,
                   help="write a checkpoint here after every epoch, so an interrupted run can --resume")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --checkpoint-dir (same options as the interrupted run)")
    p.set_defaults(run=run_train, interrupted=train_interrupted)

    e = subparsers.add_parser("eval", help="evaluate a saved model on a dataset's test split")
    e.add_argument("model_file", help="a model saved by slimkit (train/prune/save_model)")
    add_factory_argument(e)
    e.add_argument("--data", default="fashion_mnist", help="dataset name (default fashion_mnist)")
    e.add_argument("--subset", type=int, default=None, help="use only N samples per split (quick runs)")
    e.set_defaults(run=run_eval)


def train_interrupted(args: argparse.Namespace) -> str:
    if args.checkpoint_dir:
        return (f"interrupted; run the same command with --resume to continue from the last finished epoch "
                f"in {args.checkpoint_dir}")
    return "interrupted; nothing was saved (give --checkpoint-dir to make training resumable with --resume)"


def run_train(args: argparse.Namespace) -> int:
    from slimkit.cli.outputs import ensure_writable
    from slimkit.core.errors import ConfigError
    from slimkit.data import load_dataset
    from slimkit.recipe.build import build_model
    from slimkit.recipe.schema import ModelSection
    from slimkit.state import save_model
    from slimkit.train import evaluate, fit
    from slimkit.train.checkpoint import checkpoint_path

    config = config_from_args(TrainConfig, args)
    ensure_writable(args.out)
    if args.resume and not args.checkpoint_dir:
        raise ConfigError("--resume: needs --checkpoint-dir, the folder the interrupted run wrote its checkpoint to")
    if args.checkpoint_dir:
        ensure_writable(args.checkpoint_dir, flag="--checkpoint-dir", folder=True)
        last = checkpoint_path(args.checkpoint_dir)
        if args.resume and not last.is_file():
            raise ConfigError(f"--resume: {last}: no checkpoint to resume from; run without --resume")
        if not args.resume and last.exists():
            raise ConfigError(f"--checkpoint-dir {args.checkpoint_dir}: holds a checkpoint of an earlier run; "
                              "continue it with --resume, or give another --checkpoint-dir")
    data = load_dataset(args.data, seed=config.seed, subset=args.subset)
    kwargs = {} if args.width is None else {"width": args.width}
    model = build_model(ModelSection(name=args.model, kwargs=kwargs), data)
    check_forward(model, data_example(data), flag="--data", source=args.data)
    fit(model, data.train, config, val_data=data.val, checkpoint_dir=args.checkpoint_dir, resume=args.resume)
    metrics = evaluate(model, data.test)
    save_model(model, args.out, metadata={"dataset": args.data, "test_accuracy": metrics["accuracy"]})
    print(f"test accuracy {100 * metrics['accuracy']:.2f}%  saved {args.out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from slimkit.data import load_dataset
    from slimkit.train import evaluate

    data = load_dataset(args.data, subset=args.subset)
    model = open_model(args.model_file, args)
    check_forward(model, data_example(data), flag="--data", source=args.data)
    metrics = evaluate(model, data.test)
    print(f"test accuracy {100 * metrics['accuracy']:.2f}%  loss {metrics['loss']:.4f}  ({metrics['samples']} samples)")
    return 0
