"""Encode/decode throughput of the .slim codec on a ResNet-50-sized model (25.6 M weights).

Three variants of the same tensors, each saved with ``save_compressed`` (encode: tensors -> file on disk,
checksum included) and read back with ``load_state`` (decode: file -> exact tensors):

* ``deep``: Deep Compression as in the paper: 70% of each conv/fc weight pruned by magnitude, k-means shared
  (8 bits conv, 5 bits fc), sparse index gaps + codebook indices, both Huffman-coded;
* ``shared``: k-means shared at 8/5 bits, no pruning: every weight is one Huffman symbol (the most symbols);
* ``pruned``: 70% pruned, fp32 values, Huffman-coded gaps.

k-means itself is quantization, not coding, and is not timed. Each variant is timed ``--repeats`` times,
alternating encode and decode, and the median is reported, as wall-clock throughput and as throughput per
second of this process' CPU time (on a shared machine the wall clock includes waiting for a core). The JSON
keys ``encode_weights_per_s`` / ``decode_weights_per_s`` are the slowest variant's wall-clock figures.

Outside the timed region every decoded tensor is compared bit for bit (dtype, shape, bytes) with the tensor that
was encoded; ``decode_exact`` in the JSON says they all matched, and the run exits with status 1 when not.

    python benchmarks/codec_throughput.py [--quick]
    python benchmarks/codec_throughput.py --smoke    # seconds: 1/32-width tensors, one repeat (a test runs it)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from slimkit.codec import load_state  # noqa: E402
from slimkit.quant.kmeans import share_weights  # noqa: E402
from slimkit.state import save_compressed  # noqa: E402
from slimkit.state.file import SLIM_FORMAT, dense_value, model_header  # noqa: E402


def resnet50_tensors(num_classes: int = 1000, width: float = 1.0) -> nn.Module:
    """Conv/BN/FC modules with exactly ResNet-50's parameter shapes (bottleneck layout 3-4-6-3)."""
    layers: list[nn.Module] = [nn.Conv2d(3, int(64 * width), 7, bias=False), nn.BatchNorm2d(int(64 * width))]
    in_ch = int(64 * width)
    for planes, blocks in [(64, 3), (128, 4), (256, 6), (512, 3)]:
        planes = int(planes * width)
        for b in range(blocks):
            out_ch = planes * 4
            layers += [nn.Conv2d(in_ch, planes, 1, bias=False), nn.BatchNorm2d(planes)]
            layers += [nn.Conv2d(planes, planes, 3, bias=False), nn.BatchNorm2d(planes)]
            layers += [nn.Conv2d(planes, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)]
            if b == 0:
                layers += [nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)]
            in_ch = out_ch
    layers.append(nn.Linear(in_ch, num_classes))
    return nn.Sequential(*layers)


def prune_(model: nn.Module, ratio: float) -> None:
    """Zero the smallest-magnitude ``ratio`` of each conv/fc weight (per layer)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                w = m.weight
                k = int(w.numel() * ratio)
                cut = w.abs().flatten().kthvalue(max(k, 1)).values
                w[w.abs() <= cut] = 0


def build(variant: str, width: float) -> nn.Module:
    torch.manual_seed(0)
    model = resnet50_tensors(width=width)
    if variant in ("deep", "pruned"):
        prune_(model, 0.7)
    if variant in ("deep", "shared"):
        share_weights(model, bits=8, layer_bits={str(len(model) - 1): 5}, iters=5)
    return model


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8)


def decode_mismatches(model: nn.Module, decoded: dict[str, torch.Tensor]) -> list[str]:
    """Names of the tensors whose decoded dtype, shape or bits differ from what ``save_compressed`` encoded."""
    _, items = model_header(model, SLIM_FORMAT, metadata=None)  # the tensors save_compressed hands the codec
    encoded = {item[0]: dense_value(item) for item in items}  # k-means shared weights as their codebook values
    bad = sorted(set(encoded) ^ set(decoded))
    for name in sorted(set(encoded) & set(decoded)):
        a, b = encoded[name], decoded[name]
        if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(_bits(a), _bits(b)):
            bad.append(name)
    return bad


def time_variant(model: nn.Module, repeats: int, folder: Path) -> dict:
    weights = sum(p.numel() for n, p in model.state_dict().items() if not n.endswith("num_batches_tracked"))
    path = folder / "model.slim"
    encode, decode, encode_cpu, decode_cpu = [], [], [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        report = save_compressed(model, path)
        t1, c1 = time.perf_counter(), time.process_time()
        decoded, _ = load_state(path)
        t2, c2 = time.perf_counter(), time.process_time()
        encode.append(t1 - t0)
        decode.append(t2 - t1)
        encode_cpu.append(c1 - c0)
        decode_cpu.append(c2 - c1)
    enc, dec = statistics.median(encode), statistics.median(decode)
    mismatches = decode_mismatches(model, decoded)  # untimed: the last decode against what was encoded
    return {
        "decode_exact": not mismatches, "mismatches": mismatches,
        "weights": weights, "file_bytes": report.file_bytes, "ratio": report.ratio,
        "encode_s": enc, "decode_s": dec, "encode_weights_per_s": weights / enc, "decode_weights_per_s": weights / dec,
        # CPU time of this process: what the codec costs when it does not wait for a shared core
        "encode_weights_per_cpu_s": weights / statistics.median(encode_cpu),
        "decode_weights_per_cpu_s": weights / statistics.median(decode_cpu),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="quarter-width model (1.6 M weights), 3 repeats")
    parser.add_argument("--smoke", action="store_true", help="1/32-width model (0.09 M weights), 1 repeat: seconds")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    width = 1 / 32 if args.smoke else 0.25 if args.quick else 1.0
    repeats = args.repeats or (1 if args.smoke else 3 if args.quick else 5)
    torch.set_num_threads(1)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("deep", "shared", "pruned"):
            model = build(variant, width)
            results[variant] = time_variant(model, repeats, Path(tmp))
            del model
    print(
        f"{'variant':<8}{'weights':>12}{'file MB':>10}{'ratio':>8}{'enc s':>8}{'dec s':>8}{'enc M/s':>9}{'dec M/s':>9}"
        f"{'enc M/cpu-s':>13}{'dec M/cpu-s':>13}"
    )
    for name, r in results.items():
        print(
            f"{name:<8}{r['weights']:>12}{r['file_bytes'] / 1e6:>10.2f}{r['ratio']:>7.1f}x{r['encode_s']:>8.2f}"
            f"{r['decode_s']:>8.2f}{r['encode_weights_per_s'] / 1e6:>9.1f}{r['decode_weights_per_s'] / 1e6:>9.1f}"
            f"{r['encode_weights_per_cpu_s'] / 1e6:>13.1f}{r['decode_weights_per_cpu_s'] / 1e6:>13.1f}"
        )
    out = {
        "encode_weights_per_s": min(r["encode_weights_per_s"] for r in results.values()),
        "decode_weights_per_s": min(r["decode_weights_per_s"] for r in results.values()),
        "weights": results["deep"]["weights"],
        "quick": args.quick,
        "smoke": args.smoke,
        "decode_exact": all(r["decode_exact"] for r in results.values()),
    }
    for name, r in results.items():
        out[f"{name}_encode_weights_per_s"] = r["encode_weights_per_s"]
        out[f"{name}_decode_weights_per_s"] = r["decode_weights_per_s"]
        out[f"{name}_encode_weights_per_cpu_s"] = r["encode_weights_per_cpu_s"]
        out[f"{name}_decode_weights_per_cpu_s"] = r["decode_weights_per_cpu_s"]
        out[f"{name}_ratio"] = r["ratio"]
    print(json.dumps(out))
    if not out["decode_exact"]:
        bad = {name: r["mismatches"][:5] for name, r in results.items() if r["mismatches"]}
        sys.exit(f"codec_throughput: decoded tensors differ from the encoded ones: {bad}")


if __name__ == "__main__":
    main()
