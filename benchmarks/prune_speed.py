"""Structured pruning: analysis+prune time and real CPU speedup, slimkit vs Torch-Pruning, same job, same run.

Each model (ResNet-50 and MobileNetV2, ImageNet-sized) is pruned to about 2x fewer MACs by Torch-Pruning
(``MetaPruner``, L1 magnitude, uniform ratio, classifier ignored: its usual recipe) and by slimkit
(``prune_channels`` with the same MACs reduction, ``round_to=16`` for the AVX-512 kernels of this CPU and
``latency_weight=1.0``: global ranking by importance / (ms saved per MAC saved), per-layer CPU latency taken
from the op times recorded while tracing, so no extra forward pass).
Latency of dense / peer / slimkit models is timed alternately in one process (medians of interleaved runs), in
PyTorch eager mode and, exported with ``slimkit.export_onnx``, in ONNX Runtime (the deployment path: it fuses
conv + BN + activation and has far less per-op overhead than eager PyTorch at batch 1).

    python benchmarks/prune_speed.py            # 224x224, batch 1 and 16
    python benchmarks/prune_speed.py --quick    # 112x112, fewer repeats (CPU minutes)
    python benchmarks/prune_speed.py --smoke    # seconds: ResNet-20 at 32x32, one round; no peer if not installed

The last line is one JSON object: the ResNet-50 figures under the issue's keys, and every model under ``models``.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _timing import interleaved_ms  # noqa: E402

import slimkit  # noqa: E402
from slimkit.profile import profile  # noqa: E402

PEER_RATIO = {"resnet50": 0.3, "mobilenetv2_imagenet": 0.3}  # about 2x fewer MACs; other models start at 0.3
ROUND_TO = 16  # both tools keep channel counts at multiples of 16 (AVX-512 kernels)


def peer_prune(model: torch.nn.Module, x: torch.Tensor, ratio: float) -> float:
    import torch_pruning as tp

    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1:]  # the classifier
    t0 = time.perf_counter()
    # like for like: slimkit ranks globally and rounds to ROUND_TO, so the peer does too
    pruner = tp.pruner.MetaPruner(model, x, importance=tp.importance.MagnitudeImportance(p=1),
                                  pruning_ratio=ratio, ignored_layers=head, global_pruning=True,
                                  round_to=ROUND_TO)
    pruner.step()
    return time.perf_counter() - t0


def ours_prune(model: torch.nn.Module, x: torch.Tensor, reduction: float) -> tuple[float, object]:
    t0 = time.perf_counter()
    report = slimkit.prune_channels(model, x, macs_reduction=reduction, round_to=ROUND_TO, latency_weight=1.0,
                                    allow_partial=True)
    return time.perf_counter() - t0, report


def latency_ms(models: dict[str, torch.nn.Module], batch: int, size: int, rounds: int) -> dict[str, float]:
    """Median latency of each model, timing them in turn each round so load changes hit all alike."""
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        return interleaved_ms({k: (lambda m=m: m(x)) for k, m in models.items()}, rounds)


def ort_latency_ms(models: dict[str, torch.nn.Module], batch: int, size: int, rounds: int,
                   threads: int) -> dict[str, float]:
    """Like :func:`latency_ms` for the models exported to ONNX and run by ONNX Runtime (``threads`` intra-op)."""
    import tempfile

    from slimkit.export import export_onnx, onnx_session

    x = torch.randn(1, 3, size, size)
    feed = {"input": torch.randn(batch, 3, size, size).numpy()}
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {k: onnx_session(export_onnx(m, x, Path(tmp) / f"{k}.onnx"), threads=threads)
                    for k, m in models.items()}
        return interleaved_ms({k: (lambda s=s: s.run(None, feed)) for k, s in sessions.items()}, rounds)


def _timed(fn, *args) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def run_model(name: str, size: int, rounds: dict[int, int], repeats: int, threads: int,
              with_peer: bool = True) -> dict[str, float | None]:
    """``with_peer=False`` (smoke runs without Torch-Pruning): slimkit alone to 2x fewer MACs, peer figures None."""
    torch.manual_seed(0)
    dense = slimkit.create_model(name, in_channels=3, num_classes=1000).eval()
    x = torch.randn(1, 3, size, size)
    macs_dense = profile(dense, x).macs
    peer_runs, ours_runs = [], []
    peer_reduction = 2.0
    for _ in range(repeats):  # alternate the two tools on fresh copies; medians of wall and CPU seconds
        if with_peer:
            peer = copy.deepcopy(dense)
            peer_runs.append(_timed(peer_prune, peer, x, PEER_RATIO.get(name, 0.3))[:2])
            peer_reduction = macs_dense / profile(peer, x).macs
        ours = copy.deepcopy(dense)
        wall, cpu, (_, report) = _timed(ours_prune, ours, x, peer_reduction)
        ours_runs.append((wall, cpu))
    ours_reduction = macs_dense / profile(ours, x).macs
    row: dict[str, float | None] = {
        "analysis_prune_s": statistics.median(r[0] for r in ours_runs),
        "peer_analysis_prune_s": statistics.median(r[0] for r in peer_runs) if with_peer else None,
        "analysis_prune_cpu_s": statistics.median(r[1] for r in ours_runs),
        "peer_analysis_prune_cpu_s": statistics.median(r[1] for r in peer_runs) if with_peer else None,
        "macs_reduction": ours_reduction, "peer_macs_reduction": peer_reduction if with_peer else None,
        "params_reduction": report.params_reduction,
    }
    models = {"dense": dense, "peer": peer, "ours": ours} if with_peer else {"dense": dense, "ours": ours}
    for batch, n in rounds.items():
        lat = latency_ms(models, batch, size, n)
        row[f"dense_ms_bs{batch}"] = lat["dense"]
        row[f"cpu_speedup_bs{batch}"] = lat["dense"] / lat["ours"]
        row[f"peer_cpu_speedup_bs{batch}"] = lat["dense"] / lat["peer"] if with_peer else None
        ort = ort_latency_ms(models, batch, size, 3 * n, threads)
        row[f"ort_dense_ms_bs{batch}"] = ort["dense"]
        row[f"ort_speedup_bs{batch}"] = ort["dense"] / ort["ours"]
        row[f"peer_ort_speedup_bs{batch}"] = ort["dense"] / ort["peer"] if with_peer else None
    for who, red in (("", ours_reduction), ("peer_", peer_reduction)):
        for batch in rounds:
            if who and not with_peer:
                row[f"{who}speedup_per_macs_bs{batch}"] = row[f"{who}ort_speedup_per_macs_bs{batch}"] = None
                continue
            row[f"{who}speedup_per_macs_bs{batch}"] = row[f"{who}cpu_speedup_bs{batch}"] / red
            row[f"{who}ort_speedup_per_macs_bs{batch}"] = row[f"{who}ort_speedup_bs{batch}"] / red
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="112x112 inputs and fewer timing rounds")
    parser.add_argument("--smoke", action="store_true", help="ResNet-20 at 32x32, one round (seconds)")
    parser.add_argument("--models", default=None, help="default resnet50,mobilenetv2_imagenet; resnet20 smoke")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for everything (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.models = args.models or ("resnet20" if args.smoke else "resnet50,mobilenetv2_imagenet")
    size = 32 if args.smoke else 112 if args.quick else 224
    rounds = {1: 1, 16: 1} if args.smoke else {1: 7, 16: 3} if args.quick else {1: 15, 16: 5}
    repeats = 1 if args.quick or args.smoke else 5
    with_peer = not args.smoke or importlib.util.find_spec("torch_pruning") is not None
    import scipy.sparse.csgraph  # noqa: F401  (import cost is not analysis time, for either tool)

    if with_peer:
        import torch_pruning  # noqa: F401

    import slimkit.prune.structured  # noqa: F401

    warm = slimkit.create_model("resnet20", in_channels=3).eval()  # first-call costs are not analysis, for either
    if with_peer:
        peer_prune(copy.deepcopy(warm), torch.randn(1, 3, 32, 32), 0.3)
    ours_prune(copy.deepcopy(warm), torch.randn(1, 3, 32, 32), 1.5)
    results = {}
    for name in args.models.split(","):
        results[name] = run_model(name, size, rounds, repeats, args.threads, with_peer)
    cols = ["analysis_prune_s", "peer_analysis_prune_s", "analysis_prune_cpu_s", "peer_analysis_prune_cpu_s",
            "macs_reduction", "peer_macs_reduction",
            "cpu_speedup_bs1", "peer_cpu_speedup_bs1", "cpu_speedup_bs16", "peer_cpu_speedup_bs16",
            "speedup_per_macs_bs1", "peer_speedup_per_macs_bs1", "speedup_per_macs_bs16",
            "peer_speedup_per_macs_bs16", "ort_speedup_bs1", "peer_ort_speedup_bs1", "ort_speedup_bs16",
            "peer_ort_speedup_bs16", "ort_speedup_per_macs_bs1", "peer_ort_speedup_per_macs_bs1",
            "ort_speedup_per_macs_bs16", "peer_ort_speedup_per_macs_bs16"]
    print(f"input {size}x{size}, {args.threads} thread(s); speedup = dense latency / pruned latency (medians)")
    print(f"{'metric':<32}" + "".join(f"{n:>22}" for n in results))
    for c in cols:
        print(f"{c:<32}" + "".join(f"{results[n][c]:>22.3f}" if results[n][c] is not None else f"{'-':>22}"
                                   for n in results))
    head = results.get("resnet50", next(iter(results.values())))
    keys = ["analysis_prune_s", "peer_analysis_prune_s", "macs_reduction", "cpu_speedup_bs1", "cpu_speedup_bs16",
            "peer_cpu_speedup_bs1", "peer_cpu_speedup_bs16"]
    summary = {k: None if head[k] is None else round(head[k], 4) for k in keys}
    summary["models"] = {n: {k: None if v is None else round(v, 4) for k, v in r.items()} for n, r in results.items()}
    summary["input_size"] = size
    summary["threads"] = args.threads
    summary["smoke"] = args.smoke
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
