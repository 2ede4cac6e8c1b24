"""``slimkit pack`` / ``unpack`` / ``pack-info``: a model file to a ``.slim`` Deep-Compression file and back.

    slimkit pack model.pt model.slim --bits 5      # k-means share (no fine-tuning), Huffman, print the breakdown
    slimkit pack-info model.slim [--json]          # the size breakdown by stage and layer, from the header
    slimkit unpack model.slim model.pt             # a plain slimkit model file with the exact decoded weights

For sharing with codebook fine-tuning use the ``deep_compression`` recipe stage.
"""

from __future__ import annotations

import argparse
import json

from slimkit.cli.inputs import add_factory_argument, open_model


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pack", help="write a model file as a compressed .slim file")
    p.add_argument("model", help="a slimkit model file (slimkit.save_model)")
    add_factory_argument(p)
    p.add_argument("output", help="the .slim file to write")
    p.add_argument("--bits", type=int, default=None, help="k-means share every Linear/Conv weight at this many bits")
    p.add_argument("--index-bits", type=int, default=None, help="sparse gap width (default: best per tensor)")
    p.add_argument("--no-huffman", action="store_true", help="store streams at fixed width only")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run_pack)

    p = subparsers.add_parser("unpack", help="decode a .slim file into a plain model file")
    p.add_argument("input", help="a .slim file")
    p.add_argument("output", help="the model file to write (slimkit.load_model reads it)")
    add_factory_argument(p)
    p.set_defaults(run=run_unpack)

    p = subparsers.add_parser("pack-info", help="print the size breakdown of a .slim file")
    p.add_argument("input", help="a .slim file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run_info)


def _print_report(report, as_json: bool) -> None:  # noqa: ANN001 - CompressionReport
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.table())
        print(f"{report.path}: {report.file_bytes} bytes, {report.ratio:.1f}x smaller than fp32")


def run_pack(args: argparse.Namespace) -> int:
    from slimkit.cli.outputs import ensure_writable
    from slimkit.quant.kmeans import share_weights
    from slimkit.state import save_compressed

    ensure_writable(args.output, flag="output")
    model = open_model(args.model, args)
    if args.bits is not None:
        share_weights(model, bits=args.bits)
    report = save_compressed(model, args.output, huffman=not args.no_huffman, index_bits=args.index_bits)
    _print_report(report, args.json)
    return 0


def run_unpack(args: argparse.Namespace) -> int:
    from slimkit.cli.outputs import ensure_writable
    from slimkit.state import save_model

    ensure_writable(args.output, flag="output")
    model = open_model(args.input, args)
    save_model(model, args.output, metadata={"unpacked_from": str(args.input)})
    print(f"{args.output}: written from {args.input}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from slimkit.codec import inspect_compressed

    _print_report(inspect_compressed(args.input), args.json)
    return 0
