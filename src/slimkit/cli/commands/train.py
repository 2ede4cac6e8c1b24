"""``slimkit train`` and ``slimkit eval``: train a zoo model on a dataset / evaluate a saved model."""

from __future__ import annotations

import argparse

from slimkit.cli.inputs import add_factory_argument, open_model


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a zoo model and save it")
    p.add_argument("model", help="zoo name or package.module:factory")
    p.add_argument("--data", default="fashion_mnist", help="dataset name (default fashion_mnist)")
    p.add_argument("--width", type=float, default=None, help="width multiplier")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subset", type=int, default=None, help="use only N samples per split (quick runs)")
    p.add_argument("--out", required=True, help="where to save the trained model (.pt)")
    p.set_defaults(run=run_train)

    e = subparsers.add_parser("eval", help="evaluate a saved model on a dataset's test split")
    e.add_argument("model_file", help="a model saved by slimkit (train/prune/save_model)")
    add_factory_argument(e)
    e.add_argument("--data", default="fashion_mnist")
    e.add_argument("--subset", type=int, default=None)
    e.set_defaults(run=run_eval)


def run_train(args: argparse.Namespace) -> int:
    from slimkit.data import load_dataset
    from slimkit.recipe.build import build_model
    from slimkit.recipe.schema import ModelSection
    from slimkit.state import save_model
    from slimkit.train import TrainConfig, evaluate, fit

    data = load_dataset(args.data, seed=args.seed, subset=args.subset)
    kwargs = {} if args.width is None else {"width": args.width}
    model = build_model(ModelSection(name=args.model, kwargs=kwargs), data)
    config = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, optimizer=args.optimizer,
                         seed=args.seed)
    fit(model, data.train, config, val_data=data.val)
    metrics = evaluate(model, data.test)
    save_model(model, args.out, metadata={"dataset": args.data, "test_accuracy": metrics["accuracy"]})
    print(f"test accuracy {100 * metrics['accuracy']:.2f}%  saved {args.out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from slimkit.data import load_dataset
    from slimkit.train import evaluate

    data = load_dataset(args.data, subset=args.subset)
    metrics = evaluate(open_model(args.model_file, args), data.test)
    print(f"test accuracy {100 * metrics['accuracy']:.2f}%  loss {metrics['loss']:.4f}  ({metrics['samples']} samples)")
    return 0
