"""The GAN slimming benchmark's teacher cache: a second run loads the same teacher instead of training it."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import slimkit

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "gan_slimming.py"


def _benchmark(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARK.parent))
    spec = importlib.util.spec_from_file_location("benchmark_gan_slimming_cache", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cached_teacher_trains_once_then_loads_the_same_weights(monkeypatch, tmp_path):
    bench = _benchmark(monkeypatch)
    calls = []

    def train(epochs: int = 3):
        calls.append(epochs)
        torch.manual_seed(len(calls))  # a second training would give other weights
        g = slimkit.create_model("dcgan_g", width=0.125, noise_dim=bench.NOISE_DIM)
        d = slimkit.create_model("dcgan_d", width=0.125)
        return g, d, [3.5, 1.25, 2.0][:epochs]

    path = tmp_path / "teacher.pt"
    g1, d1, scores1 = bench.cached_teacher(path, train)
    assert calls == [3] and path.exists()
    g2, d2, scores2 = bench.cached_teacher(path, train)
    assert calls == [3, 0]  # only fresh models of the right shapes, no training
    assert scores2 == scores1 == [3.5, 1.25, 2.0]
    for a, b in ((g1, g2), (d1, d2)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    z, y = torch.randn(4, bench.NOISE_DIM), torch.arange(4)
    with torch.no_grad():
        assert torch.equal(g1.eval()(z, y), g2.eval()(z, y))
    assert not g2.training


def test_help_lists_the_gs8_start(monkeypatch, capsys):
    bench = _benchmark(monkeypatch)
    monkeypatch.setattr(sys, "argv", ["gan_slimming.py", "--help"])
    try:
        bench.main()
    except SystemExit as done:
        assert done.code == 0
    out = capsys.readouterr().out
    assert "--gs8-from" in out and "--no-teacher-cache" in out and "--extra-weight-bits" in out


def test_extra_weight_bits_parse_and_refuse_8(monkeypatch):
    bench = _benchmark(monkeypatch)
    assert bench._bit_list("4") == (4,) and bench._bit_list("4,6") == (4, 6) and bench._bit_list("") == ()
    with pytest.raises(argparse.ArgumentTypeError, match="8 is always run"):
        bench._bit_list("8")
