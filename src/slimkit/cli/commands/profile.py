"""``slimkit profile MODEL``: per-layer table of params and MACs, totals, and optionally latency."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from slimkit.cli.inputs import add_factory_argument, check_forward, input_size, open_model, spec_in_channels
from slimkit.core.errors import ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "profile",
        help="count params, MACs, FLOPs, size and activation memory of a model",
        description="Profile a zoo model (by name) or a model file written by slimkit.state.save_model.",
    )
    p.add_argument("model", help="zoo name (e.g. resnet20), package.module:factory, or a saved model file")
    add_factory_argument(p)
    p.add_argument("--in-channels", type=int, default=None, help="input channels (zoo models; default 1)")
    p.add_argument("--num-classes", type=int, default=None, help="output classes (zoo models; default 10)")
    p.add_argument("--width", type=float, default=None, help="width multiplier (zoo models; default 1.0)")
    p.add_argument(
        "--input-size", type=str, default=None,
        help="input height and width: 32 or 32x40 (default: 28 for 1 channel, else 32)",
    )
    p.add_argument("--batch-size", type=int, default=1, help="batch size of the example input (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--latency", action="store_true", help="also time inference")
    p.add_argument("--device", default="cpu", help="device for --latency (default cpu)")
    p.add_argument("--warmup", type=int, default=10, help="untimed passes for --latency")
    p.add_argument("--repeats", type=int, default=50, help="timed passes for --latency")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for --latency (default: torch's)")
    p.add_argument("--max-rows", type=int, default=None, help="show at most this many layers in the table")
    p.set_defaults(run=run)


def _load(args: argparse.Namespace) -> tuple[torch.nn.Module, int]:
    """The model and its input channels; a path that exists is read as a saved model file."""
    from slimkit.models import create_model

    path = Path(args.model)
    if path.is_file():
        for flag in ("in_channels", "num_classes", "width"):
            if getattr(args, flag) is not None:
                raise ConfigError(f"--{flag.replace('_', '-')}: not allowed with a saved model file ({path})")
        model = open_model(path, args)
        return model, spec_in_channels(model)
    if path.suffix in (".pt", ".pth", ".ckpt") or "/" in args.model:
        raise ConfigError(f"{path}: no such model file")
    in_channels = 1 if args.in_channels is None else args.in_channels
    kwargs: dict[str, Any] = {"in_channels": in_channels}
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    if args.width is not None:
        kwargs["width"] = args.width
    return create_model(args.model, **kwargs), in_channels


def run(args: argparse.Namespace) -> int:
    from slimkit.profile import measure_latency, profile

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: must be >= 1, got {args.batch_size}")
    model, in_channels = _load(args)
    height, width = input_size(args.input_size, in_channels)
    example = torch.randn(args.batch_size, in_channels, height, width)
    check_forward(model.eval(), (example[:1],), flag="--input-size", source=args.input_size or f"{height}x{width} (the default)")
    report = profile(model, example)
    latency = None
    if args.latency:
        latency = measure_latency(
            model, example, device=args.device, warmup=args.warmup, repeats=args.repeats, num_threads=args.threads
        )
    if args.json:
        data = {"model": args.model, **report.to_dict()}
        if latency is not None:
            data["latency"] = latency.to_dict()
        print(json.dumps(data))
        return 0
    print(f"{args.model}  input {args.batch_size}x{in_channels}x{height}x{width}")
    print(report.table(max_rows=args.max_rows))
    if latency is not None:
        print(f"latency {latency}")
    return 0
