"""``slimkit quantize MODEL.pt --onnx OUT.onnx``: post-training quantization of a saved model.

Calibrates on a few training batches, prints the per-layer report and the accuracy of the float model, the
simulated quantized model and (for ``--onnx``) the ONNX Runtime integer model itself. Binary, ternary and QAT
need training: use a recipe (``quantize`` stage then ``finetune``).
"""

from __future__ import annotations

import argparse

from slimkit.cli.inputs import (
    add_factory_argument,
    check_forward,
    config_from_flags,
    data_example,
    open_model,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("quantize", help="post-training quantization of a saved model (int8 ONNX export)")
    p.add_argument("model_file", help="a model saved by slimkit (train / save_model)")
    add_factory_argument(p)
    p.add_argument("--data", default="fashion_mnist", help="dataset for calibration and accuracy")
    p.add_argument("--subset", type=int, default=None, help="use only N samples per split (quick runs)")
    p.add_argument("--weight-bits", type=int, default=8, help="bits per weight, 2 to 8 (default 8)")
    p.add_argument("--activation-bits", type=int, default=8, help="0 for weight-only quantization")
    p.add_argument("--granularity", choices=["per_channel", "per_tensor"], default="per_channel",
                   help="one weight scale per output channel or per tensor (default per_channel)")
    p.add_argument("--observer", choices=["minmax", "moving_average", "percentile", "mse"], default="minmax",
                   help="how activation ranges are estimated (default minmax)")
    p.add_argument("--mixed-budget", type=float, default=None, metavar="RATIO",
                   help="choose per-layer widths (2/4/8 bits) for weights of RATIO x the fp32 bytes")
    p.add_argument("--keep-first-last", action="store_true", help="leave the first and last layers in float")
    p.add_argument("--calibration-batches", type=int, default=8,
                   help="training batches the observers see (default 8)")
    p.add_argument("--onnx", default=None, metavar="OUT.onnx", help="write the int8 QDQ ONNX model here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from slimkit.cli.outputs import ensure_writable
    from slimkit.core.config import parse_config
    from slimkit.data import load_dataset, make_loader
    from slimkit.quant import IntegerModel, MixedPrecisionConfig, QuantConfig, export_onnx_int8, quantize
    from slimkit.train import evaluate

    config = config_from_flags(QuantConfig, {
        "--weight-bits": args.weight_bits,
        "--activation-bits": args.activation_bits or None,
        "--granularity": args.granularity,
        "--observer": args.observer,
        "--keep-first-last": args.keep_first_last,
        "--calibration-batches": args.calibration_batches,
    })
    if args.onnx:
        ensure_writable(args.onnx, flag="--onnx")
    data = load_dataset(args.data, subset=args.subset)
    model = open_model(args.model_file, args).eval()
    check_forward(model, data_example(data), flag="--data", source=args.data)
    batches = []
    for i, batch in enumerate(make_loader(data.train, batch_size=128, shuffle=True, seed=0)):
        if i >= args.calibration_batches:
            break
        batches.append(batch)
    acc_fp32 = evaluate(model, data.test)["accuracy"]
    if args.mixed_budget is not None:
        quant_config = parse_config(MixedPrecisionConfig, {"budget_ratio": args.mixed_budget, "quant": config},
                                    where="quantize")
    else:
        quant_config = config
    report = quantize(model, quant_config, calibration_data=batches)
    print(report.table())
    acc_sim = evaluate(model, data.test)["accuracy"]
    print(f"accuracy fp32 {100 * acc_fp32:.2f}%  quantized (simulated) {100 * acc_sim:.2f}%")
    if args.onnx:
        x, _ = data.train[0]
        path = export_onnx_int8(model, (x.unsqueeze(0),), args.onnx, calibration_data=batches,
                                observer=args.observer)
        acc_int8 = IntegerModel(path).evaluate(make_loader(data.test, batch_size=256, shuffle=False))["accuracy"]
        print(f"accuracy int8 ONNX Runtime {100 * acc_int8:.2f}%  saved {path}")
    return 0
