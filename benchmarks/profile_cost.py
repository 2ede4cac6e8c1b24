"""Seconds to profile ResNet-56 (CIFAR, 32x32) and ResNet-50 (ImageNet, 224x224): slimkit vs fvcore and thop.

All three tools profile the same model objects in one process, interleaved run by run (slimkit, fvcore, thop,
then rotated) so that machine noise hits all alike; the median per tool is reported. MACs agreement is checked on
conv + linear (the layers whose counting all three share); totals differ by convention (BN, pooling).

    python benchmarks/profile_cost.py            # 5 timed runs per tool and model
    python benchmarks/profile_cost.py --quick    # 1 timed run (a couple of CPU minutes)
    python benchmarks/profile_cost.py --smoke    # seconds: ResNet-20 only, 1 run; a peer not installed is skipped

Last line: one JSON object with ``profile_s`` (slimkit, both models, wall-clock seconds), ``peer_profile_s`` (fvcore),
``thop_profile_s``, the same as CPU seconds (``*_cpu_s``: steadier than wall-clock on a shared machine), and
per-model detail.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import slimkit
from slimkit.models import create_model

MODELS: list[tuple[str, dict[str, Any], tuple[int, ...]]] = [
    ("resnet56", {"in_channels": 3, "num_classes": 10}, (1, 3, 32, 32)),
    ("resnet50", {"in_channels": 3, "num_classes": 1000}, (1, 3, 224, 224)),
]
SMOKE_MODELS = [("resnet20", {"in_channels": 3, "num_classes": 10}, (1, 3, 32, 32))]


def run_slimkit(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    report = slimkit.profile(model, x)
    conv_linear = sum(report.ops.get(op, {}).get("macs", 0) for op in ("convolution", "addmm", "mm"))
    return {"macs": report.macs, "conv_linear_macs": conv_linear, "params": report.params}


def run_fvcore(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, (x,))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    total = int(analysis.total())  # fvcore counts one multiply-add as one "flop"
    by_op = analysis.by_operator()
    return {"macs": total, "conv_linear_macs": int(by_op.get("conv", 0) + by_op.get("linear", 0) + by_op.get("addmm", 0))}


def run_thop(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    import thop

    macs, params = thop.profile(model, inputs=(x,), verbose=False)
    return {"macs": int(macs), "params": int(params)}


def thop_conv_linear_macs(model: nn.Module, x: torch.Tensor) -> int:
    """thop with every counter except conv and linear switched off (untimed; for the agreement check)."""
    import thop
    from thop.vision.basic_hooks import zero_ops

    skip = (nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Identity)
    custom = {t: zero_ops for t in skip}
    macs, _ = thop.profile(model, inputs=(x,), custom_ops=custom, verbose=False)
    return int(macs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timed run per tool and model")
    parser.add_argument("--smoke", action="store_true", help="ResNet-20 only, one run; skips a peer not installed")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per tool and model (default 5)")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="intra-op threads (default 1: on a shared machine spinning worker threads make times meaningless)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (1 if args.quick or args.smoke else 5)
    torch.manual_seed(0)

    tools: list[tuple[str, Callable[[nn.Module, torch.Tensor], dict[str, int]]]] = [
        ("slimkit", run_slimkit), ("fvcore", run_fvcore), ("thop", run_thop),
    ]
    if args.smoke:  # the smoke run checks the code path: a peer that is not installed is left out (figures null)
        tools = [t for t in tools if t[0] == "slimkit" or importlib.util.find_spec(t[0]) is not None]
    names = [t for t, _ in tools]
    detail: dict[str, Any] = {}
    print(f"profile_cost: {repeats} timed run(s) per tool, torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print(f"threads {torch.get_num_threads()}; wall-clock seconds (median, min) and CPU seconds (median, all threads)")
    print(f"{'model':<10} {'tool':<8} {'median s':>9} {'min s':>8} {'cpu s':>8} {'MACs':>15}")
    for name, kwargs, shape in SMOKE_MODELS if args.smoke else MODELS:
        model = create_model(name, **kwargs).eval()
        x = torch.randn(shape)
        copies = {"slimkit": model, "fvcore": model, "thop": copy.deepcopy(model)}  # thop adds buffers
        for tool_name, fn in tools:  # one untimed warm-up each (allocator, jit, imports)
            fn(copies[tool_name], x)
        times: dict[str, list[float]] = {t: [] for t, _ in tools}
        cpu_times: dict[str, list[float]] = {t: [] for t, _ in tools}
        results: dict[str, dict[str, int]] = {}
        for r in range(repeats):
            order = tools[r % len(tools):] + tools[: r % len(tools)]
            for tool_name, fn in order:
                start, start_cpu = time.perf_counter(), time.process_time()
                results[tool_name] = fn(copies[tool_name], x)
                times[tool_name].append(time.perf_counter() - start)
                cpu_times[tool_name].append(time.process_time() - start_cpu)
        if "thop" in results:
            results["thop"]["conv_linear_macs"] = thop_conv_linear_macs(copy.deepcopy(model), x)
        row: dict[str, Any] = {"input": list(shape)}
        for tool_name, _ in tools:
            med = statistics.median(times[tool_name])
            med_cpu = statistics.median(cpu_times[tool_name])
            row[f"{tool_name}_s"] = round(med, 4)
            row[f"{tool_name}_cpu_s"] = round(med_cpu, 4)
            print(
                f"{name:<10} {tool_name:<8} {med:>9.3f} {min(times[tool_name]):>8.3f} {med_cpu:>8.3f} "
                f"{results[tool_name]['macs']:>15,}"
            )
        row["macs"] = {t: results[t]["macs"] for t, _ in tools}
        row["conv_linear_macs"] = {t: results[t]["conv_linear_macs"] for t, _ in tools}
        row["conv_linear_macs_agree"] = len(set(row["conv_linear_macs"].values())) == 1
        row["params"] = results["slimkit"]["params"]
        print(f"{name:<10} conv+linear MACs {row['conv_linear_macs']}  agree={row['conv_linear_macs_agree']}")
        detail[name] = row

    def total(tool: str, key: str) -> float | None:  # None: that tool is not installed (smoke runs only)
        return round(sum(d[f"{tool}_{key}"] for d in detail.values()), 4) if tool in names else None

    summary = {
        "benchmark": "profile_cost",
        "quick": args.quick,
        "smoke": args.smoke,
        "repeats": repeats,
        "threads": args.threads,
        "profile_s": total("slimkit", "s"),
        "peer": "fvcore",
        "peer_profile_s": total("fvcore", "s"),
        "thop_profile_s": total("thop", "s"),
        "profile_cpu_s": total("slimkit", "cpu_s"),
        "peer_profile_cpu_s": total("fvcore", "cpu_s"),
        "thop_profile_cpu_s": total("thop", "cpu_s"),
        "macs_agree": all(d["conv_linear_macs_agree"] for d in detail.values()),
        "models": detail,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
