"""Latency measurement: shape of the report, eval/threads restored, alternate timing of two models."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

import slimkit
from slimkit.core.errors import ConfigError


class Sleeper(nn.Module):
    """A model whose forward takes a known time, so medians can be checked."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        time.sleep(self.seconds)
        return self.fc(x)


def test_measure_latency_report_and_restores_state():
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5)).train()
    threads = torch.get_num_threads()
    report = slimkit.measure_latency(model, torch.randn(3, 8), warmup=2, repeats=7, num_threads=1)
    assert len(report.samples_ms) == 7 and report.batch_size == 3 and report.device == "cpu"
    assert min(report.samples_ms) <= report.p10_ms <= report.median_ms <= report.p90_ms <= max(report.samples_ms)
    assert report.std_ms >= 0 and report.mean_ms > 0
    assert all(m.training for m in model.modules())
    assert torch.get_num_threads() == threads


def test_measure_latency_times_the_forward():
    report = slimkit.measure_latency(Sleeper(0.01), torch.randn(1, 4), warmup=1, repeats=5)
    assert 9.5 <= report.median_ms < 200


def test_measure_latency_dtype_times_a_copy():
    model = nn.Linear(4, 4)
    report = slimkit.measure_latency(model, torch.randn(2, 4), warmup=0, repeats=2, dtype=torch.float64)
    assert len(report.samples_ms) == 2
    assert model.weight.dtype == torch.float32  # the model itself is untouched


def test_compare_latency_alternates_and_reports_speedup():
    slow, fast = Sleeper(0.02), Sleeper(0.005)
    report_slow, report_fast, speedup = slimkit.compare_latency(slow, fast, torch.randn(1, 4), warmup=1, repeats=6)
    assert len(report_slow.samples_ms) == len(report_fast.samples_ms) == 6
    assert report_slow.median_ms > report_fast.median_ms
    assert speedup == pytest.approx(report_slow.median_ms / report_fast.median_ms)
    assert speedup > 1.5


@pytest.mark.parametrize("kwargs", [{"repeats": 0}, {"warmup": -1}, {"num_threads": 0}])
def test_bad_options_raise(kwargs):
    with pytest.raises(ConfigError):
        slimkit.measure_latency(nn.Linear(2, 2), torch.randn(1, 2), **kwargs)


def test_profile_verb_survives_importing_the_package_first():
    import slimkit.profile as package  # binds slimkit.profile to the package

    report = slimkit.profile(nn.Linear(3, 2), torch.randn(1, 3))
    assert report.macs == 6
    assert package.profile(nn.Linear(3, 2), torch.randn(1, 3)).macs == 6


def test_cpu_profiling_and_timing_never_start_cuda():
    model = nn.Linear(4, 4)
    slimkit.profile(model, torch.randn(1, 4))
    slimkit.measure_latency(model, torch.randn(1, 4), warmup=0, repeats=1)
    assert not torch.cuda.is_initialized()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_measure_latency_on_cuda_times_a_copy_and_synchronizes():
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256))
    report = slimkit.measure_latency(model, torch.randn(8, 256), device="cuda", warmup=2, repeats=5)
    assert report.device.startswith("cuda") and len(report.samples_ms) == 5 and report.median_ms > 0
    assert next(model.parameters()).device.type == "cpu"
