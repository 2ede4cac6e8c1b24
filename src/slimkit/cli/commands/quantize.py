"""``slimkit quantize MODEL.pt --onnx OUT.onnx``: post-training quantization of a saved model.

Calibrates on a few training batches, prints the per-layer report and the accuracy of the float model, the
simulated quantized model and (for ``--onnx``) the ONNX Runtime integer model itself. Binary, ternary and QAT
need training: use a recipe (``quantize`` stage then ``finetune``).
"""

from __future__ import annotations

import argparse

from slimkit.cli.from_config import add_config_arguments, config_from_args
from slimkit.cli.inputs import add_factory_argument, check_forward, data_example, open_model
from slimkit.quant.config import QuantConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("quantize", help="post-training quantization of a saved model (int8 ONNX export)")
    p.add_argument("model_file", help="a model saved by slimkit (train / save_model)")
    add_factory_argument(p)
    p.add_argument("--data", default="fashion_mnist", help="dataset for calibration and accuracy")
    p.add_argument("--subset", type=int, default=None, help="use only N samples per split (quick runs)")
    add_config_arguments(p, QuantConfig, exclude=("mode", "learn_step"))  # QAT needs training: a recipe
    p.add_argument("--mixed-budget", type=float, default=None, metavar="RATIO",
                   help="choose per-layer widths (2/4/8 bits) for weights of RATIO x the fp32 bytes")
    p.add_argument("--onnx", default=None, metavar="OUT.onnx", help="write the int8 QDQ ONNX model here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from slimkit.cli.outputs import ensure_writable
    from slimkit.core.config import parse_config
    from slimkit.data import load_dataset, make_loader
    from slimkit.quant import IntegerModel, MixedPrecisionConfig, export_onnx_int8, quantize
    from slimkit.train import evaluate

    weight_only = {"activation_bits": None} if args.activation_bits == 0 else {}  # 0: the older spelling of none
    config = config_from_args(QuantConfig, args, **weight_only)
    if args.onnx:
        ensure_writable(args.onnx, flag="--onnx")
    data = load_dataset(args.data, subset=args.subset)
    model = open_model(args.model_file, args).eval()
    check_forward(model, data_example(data), flag="--data", source=args.data)
    batches = []
    for i, batch in enumerate(make_loader(data.train, batch_size=128, shuffle=True, seed=0)):
        if i >= config.calibration_batches:
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
                                observer=config.observer.value)
        acc_int8 = IntegerModel(path).evaluate(make_loader(data.test, batch_size=256, shuffle=False))["accuracy"]
        print(f"accuracy int8 ONNX Runtime {100 * acc_int8:.2f}%  saved {path}")
    return 0
