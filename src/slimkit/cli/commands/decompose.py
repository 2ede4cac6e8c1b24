"""``slimkit decompose MODEL.pt --out OUT.pt``: low-rank factor a saved model and print the per-layer report."""

from __future__ import annotations

import argparse

from slimkit.cli.from_config import add_config_arguments, config_from_args
from slimkit.cli.inputs import add_factory_argument, check_forward, open_model
from slimkit.lowrank.api import DecomposeConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("decompose", help="replace layers of a saved model by low-rank factors")
    p.add_argument("model_file", help="a model saved by slimkit (train / save_model)")
    add_factory_argument(p)
    p.add_argument("--out", required=True, help="where to save the decomposed model (.pt)")
    add_config_arguments(p, DecomposeConfig)
    p.add_argument("--input-shape", default="1,28,28", help="one sample's shape C,H,W (default 1,28,28)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from slimkit.cli.outputs import ensure_writable
    from slimkit.core.errors import ConfigError
    from slimkit.core.modules import module_names
    from slimkit.lowrank import decompose
    from slimkit.lowrank.checkpoint import save_decomposed

    config = config_from_args(DecomposeConfig, args)
    try:
        shape = tuple(int(v) for v in args.input_shape.split(","))
    except ValueError:
        raise ConfigError(f"--input-shape: expected comma-separated integers, got {args.input_shape!r}") from None
    if not shape or min(shape) < 1:
        raise ConfigError(f"--input-shape: expected positive sizes C,H,W, got {args.input_shape!r}")
    ensure_writable(args.out)
    model = open_model(args.model_file, args).eval()
    check_forward(model, (torch.zeros(1, *shape),), flag="--input-shape", source=args.input_shape)
    module_names(model, config.ignore, field="--ignore")
    report = decompose(model, (torch.zeros(1, *shape),), config)
    print(report.table())
    save_decomposed(model, args.out)
    print(f"saved {args.out}")
    return 0
