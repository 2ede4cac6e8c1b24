"""``slimkit export MODEL --out model.onnx``: a saved (pruned, decomposed, ...) model as verified fp32 ONNX."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from slimkit.cli.inputs import add_factory_argument, load_with_example


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a saved model as ONNX (batch dimension free), checked with ONNX Runtime",
        description="Export a model file written by slimkit.state.save_model to ONNX.",
    )
    p.add_argument("model", help="a model file written by slimkit.state.save_model")
    add_factory_argument(p)
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--input-size", type=str, default=None, help="input HxW (default 28 for 1 channel, else 32)")
    p.add_argument("--atol", type=float, default=1e-4, help="largest output difference accepted (default 1e-4)")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime check")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from slimkit.cli.outputs import ensure_writable
    from slimkit.export import export_onnx

    ensure_writable(args.out)
    model, x = load_with_example(args.model, args.input_size, args)
    path = export_onnx(model, (x,), Path(args.out), verify=not args.no_verify, atol=args.atol)
    result = {"model": args.model, "out": str(path), "bytes": path.stat().st_size, "verified": not args.no_verify}
    print(json.dumps(result) if args.json else f"wrote {path} ({result['bytes']:,} bytes"
          f"{', outputs match PyTorch' if result['verified'] else ''})")
    return 0
