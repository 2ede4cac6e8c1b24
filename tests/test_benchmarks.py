"""Every benchmark imports, parses its arguments (``--help``), documents its last-line JSON keys, and runs.

The full benchmarks take minutes to hours and are not run here. Each has a ``--smoke`` setting instead (the
smallest model and data, one epoch or round, a peer that is not installed skipped): the slow-marked test runs it in
a subprocess and checks that the last line is one JSON object holding every key that docs/benchmarks.md shows for
that benchmark. Smoke figures mean nothing; the point is that the code path a reader trusts still runs. The runs go
two at a time (each benchmark uses one intra-op thread): about a minute in all on a 2-core machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[1]
BENCHMARKS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))
DOCS = ROOT / "docs" / "benchmarks.md"

# Benchmarks whose --smoke run cannot finish in seconds, with the reason (none today: every benchmark smokes).
SMOKE_EXCLUDED: dict[str, str] = {}
SMOKE = [p for p in BENCHMARKS if p.stem not in SMOKE_EXCLUDED]
SMOKE_TIMEOUT_S = 240  # one run; they take 4-12 s each on an idle 2-core machine
SMOKE_WORKERS = 2
# The accuracy benchmarks of issue 17: their record is a mean over ``--seeds`` with spreads and versions.
SEEDED = {"slimming_vgg", "deep_compression", "unstructured_lenet300", "int8_ptq", "binary_ternary", "lowrank",
          "reconstruction", "resnet_channels", "latency_aware", "progressive_global", "distill"}


def load_benchmark(path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location(f"benchmark_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documented_keys(name: str) -> set[str]:
    """Top-level keys of every JSON line docs/benchmarks.md shows under ``## name`` (those in all of them)."""
    sections = re.split(r"^## ", DOCS.read_text(), flags=re.MULTILINE)
    section = next((s for s in sections if s.split("\n", 1)[0].strip() == name), None)
    assert section is not None, f"docs/benchmarks.md has no '## {name}' section"
    blocks = re.findall(r"```json\n(\{.*?\})\n```", section, flags=re.DOTALL)
    assert blocks, f"docs/benchmarks.md '## {name}' shows no JSON result"
    return set.intersection(*(set(json.loads(b)) for b in blocks))


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_imports_and_parses_help(path, monkeypatch, capsys):
    module = load_benchmark(path, monkeypatch)
    assert module.__doc__ and "--quick" in module.__doc__, "the docstring says how to run the quick version"
    monkeypatch.setattr(sys, "argv", [path.name, "--help"])
    with pytest.raises(SystemExit) as done:
        module.main()
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--quick" in out
    assert "--smoke" in out or path.stem in SMOKE_EXCLUDED, "a --smoke setting, or a reason in SMOKE_EXCLUDED"


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_documents_its_json(path):
    assert documented_keys(path.stem), "the documented result has keys"


def test_seeded_list_names_real_benchmarks():
    assert SEEDED <= {p.stem for p in BENCHMARKS}


def test_codec_benchmark_catches_a_flipped_bit(monkeypatch, tmp_path):
    """``decode_exact`` has teeth: one changed bit in one decoded tensor is reported by name."""
    codec = load_benchmark(ROOT / "benchmarks" / "codec_throughput.py", monkeypatch)
    model = codec.build("deep", 1 / 32)
    codec.save_compressed(model, tmp_path / "m.slim")
    decoded, _ = codec.load_state(tmp_path / "m.slim")
    assert codec.decode_mismatches(model, decoded) == []
    name = next(k for k, v in decoded.items() if v.dtype == torch.float32 and v.numel() > 1)
    flipped = decoded[name].clone()
    flipped.view(torch.int32).view(-1)[0] ^= 1  # the lowest mantissa bit of one value
    assert codec.decode_mismatches(model, {**decoded, name: flipped}) == [name]
    assert codec.decode_mismatches(model, {**decoded, name: decoded[name].double()}) == [name]  # dtype counts
    missing = dict(decoded)
    missing.pop(name)
    assert codec.decode_mismatches(model, missing) == [name]


def test_codec_benchmark_fails_when_decoding_is_wrong(monkeypatch, capsys):
    """The timed decode itself is checked: a decoder that flips one bit makes the run say so and exit non-zero."""
    codec = load_benchmark(ROOT / "benchmarks" / "codec_throughput.py", monkeypatch)
    real_load_state = codec.load_state

    def flipping_load_state(path):
        decoded, header = real_load_state(path)
        name = next(k for k, v in decoded.items() if v.dtype == torch.float32 and v.numel() > 1)
        decoded[name].view(torch.int32).view(-1)[0] ^= 1
        return decoded, header

    monkeypatch.setattr(codec, "load_state", flipping_load_state)
    monkeypatch.setattr(sys, "argv", ["codec_throughput.py", "--smoke"])
    with pytest.raises(SystemExit) as done:
        codec.main()
    assert "decoded tensors differ" in str(done.value.code)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["decode_exact"] is False


def _run_smoke(path: Path, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    args = [sys.executable, str(path), "--smoke"]
    if path.stem in ("slimming_vgg", "progressive_global"):  # their plots, out of the checkout
        args += ["--out-dir", str(cwd / "plots")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S)
    return proc, time.perf_counter() - started


@pytest.fixture(scope="session")
def smoke_runs(request, tmp_path_factory):
    """Starts the smoke runs of the selected benchmarks, two at a time, once per session: name -> future."""
    wanted = {item.callspec.params["path"].stem for item in request.session.items
              if getattr(item, "originalname", "") == "test_benchmark_smoke" and hasattr(item, "callspec")}
    pool = ThreadPoolExecutor(max_workers=SMOKE_WORKERS)
    futures: dict[str, Future] = {
        p.stem: pool.submit(_run_smoke, p, tmp_path_factory.mktemp(f"smoke_{p.stem}")) for p in SMOKE if p.stem in wanted
    }
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.slow
@pytest.mark.parametrize("path", SMOKE, ids=lambda p: p.stem)
def test_benchmark_smoke(path, smoke_runs, tmp_path):
    future = smoke_runs.get(path.stem)  # started with the others; run here if the selection hid it from the fixture
    proc, seconds = future.result() if future is not None else _run_smoke(path, tmp_path)
    assert proc.returncode == 0, f"{path.stem} --smoke exited {proc.returncode} after {seconds:.0f}s:\n{proc.stderr[-4000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"{path.stem} --smoke printed nothing"
    result = json.loads(lines[-1])  # the last line is one JSON object
    assert isinstance(result, dict)
    missing = documented_keys(path.stem) - set(result)
    assert not missing, f"{path.stem}: keys shown in docs/benchmarks.md but missing from the result: {sorted(missing)}"
    assert result["smoke"] is True, "the result says it is a smoke run"
    if path.stem == "codec_throughput":
        assert result["decode_exact"] is True
    if path.stem in SEEDED:  # mean +- std over seeds, the paired effects flagged, the versions named
        assert result["seeds"] == 1, "--smoke runs one seed"
        assert set(result["versions"]) == {"torch", "onnxruntime", "numpy"}
        stds = [k for k in result if k.endswith("_std") and not k.endswith("_within_std")]
        assert stds, f"{path.stem}: no NAME_std key"
        unpaired = [k for k in stds if k[: -len("_std")] not in result and f"{k[: -len('_std')]}_mean" not in result]
        assert not unpaired, f"{path.stem}: NAME_std without its NAME (or NAME_mean): {unpaired}"
        flags = [k for k in result if k.endswith("_within_std")]
        assert all(isinstance(result[k], bool) for k in flags), f"{path.stem}: a _within_std flag is not a bool"


def test_seeds_summary_means_stds_and_noise_flag(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    seeds = importlib.import_module("_seeds")
    rows = [{"acc": 0.80, "drop": 0.3}, {"acc": 0.82, "drop": -0.1}, {"acc": 0.84, "drop": 0.1}]
    out = seeds.summarize(rows, ["acc"], effects=["drop"])
    assert out["acc"] == pytest.approx(0.82) and out["acc_std"] == pytest.approx(0.02)
    assert out["acc_seeds"] == [0.8, 0.82, 0.84]
    assert out["drop"] == pytest.approx(0.1) and out["drop_std"] == pytest.approx(0.2)
    assert out["drop_within_std"] is True  # |0.1| <= 0.2: not distinguishable from seed noise
    strong = seeds.summarize([{"d": 1.0}, {"d": 1.2}, {"d": 1.1}], [], effects=["d"])
    assert strong["d_within_std"] is False
    _, summary = seeds.over_seeds(2, lambda s: {"acc": 0.5 + s / 10}, ["acc"])
    assert summary["seeds"] == 2 and summary["acc"] == pytest.approx(0.55)
    assert set(summary["versions"]) == {"torch", "onnxruntime", "numpy"}


def test_seeded_record_averages_every_figure_that_varies(monkeypatch):
    """No record shows seed 0's value of a figure that differs between seeds under the other figures' means."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    seeds = importlib.import_module("_seeds")
    args = argparse.Namespace(seeds=3, first_seed=0, quick=False, smoke=False)
    runs = {0: 0.70, 1: 0.60, 2: 0.80}
    record = seeds.seeded_result(
        args, lambda s: {"acc_dense": 0.9, "acc_pruned": 0.85 - s / 100, "acc_baseline": runs[s], "width": 0.5,
                         "quick": False, "layers": [1, 2]},
        ["acc_dense", "acc_pruned"], {"acc_drop_points": ("acc_dense", "acc_pruned")})
    assert record["acc_pruned"] == pytest.approx(0.84) and record["acc_drop_points"] == pytest.approx(6.0)
    assert record["acc_baseline"] == pytest.approx(0.70) and record["acc_baseline_std"] == pytest.approx(0.1)
    assert record["acc_baseline_seeds"] == [0.7, 0.6, 0.8]
    assert record["width"] == 0.5 and "width_std" not in record  # equal on every seed: kept as it is
    assert record["quick"] is False and record["layers"] == [1, 2]


@pytest.mark.slow
def test_deep_compression_fc1_ratio_sets_lenet5_plan(tmp_path):
    """``--fc1-ratio`` (a ratio chosen earlier on validation) reaches LeNet-5's plan; a bad one is refused by name."""
    script = ROOT / "benchmarks" / "deep_compression.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    run = [sys.executable, str(script), "--smoke", "--models", "lenet5"]
    proc = subprocess.run([*run, "--fc1-ratio", "0.5"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=SMOKE_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ratios_lenet5"]["classifier.0"] == 0.5
    assert result["density_lenet5"] > 0.2  # fc1 (400k of 431k weights) kept at half, not at the plan's 9%
    bad = subprocess.run([*run, "--fc1-ratio", "1.5"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "--fc1-ratio" in bad.stderr
