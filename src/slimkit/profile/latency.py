"""Wall-clock latency of inference, alone or for two models timed alternately so that noise hits both equally."""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_map

from slimkit.core.errors import ConfigError
from slimkit.core.modules import model_device
from slimkit.profile.profiler import as_call_args


@dataclass(frozen=True)
class LatencyReport:
    """Per-forward wall-clock times in milliseconds (one sample = one forward pass on the whole batch)."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    samples_ms: tuple[float, ...]
    device: str
    batch_size: int

    @classmethod
    def from_samples(cls, samples_ms: list[float], device: str, batch_size: int) -> LatencyReport:
        ordered = torch.tensor(samples_ms, dtype=torch.float64)
        q = torch.quantile(ordered, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)).tolist()
        return cls(
            median_ms=q[1],
            p10_ms=q[0],
            p90_ms=q[2],
            mean_ms=statistics.fmean(samples_ms),
            std_ms=statistics.pstdev(samples_ms),
            samples_ms=tuple(samples_ms),
            device=device,
            batch_size=batch_size,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "median_ms": self.median_ms, "p10_ms": self.p10_ms, "p90_ms": self.p90_ms, "mean_ms": self.mean_ms,
            "std_ms": self.std_ms, "device": self.device, "batch_size": self.batch_size,
            "repeats": len(self.samples_ms),
        }

    def __str__(self) -> str:
        return (
            f"{self.median_ms:.3f} ms median (p10 {self.p10_ms:.3f}, p90 {self.p90_ms:.3f}, "
            f"n={len(self.samples_ms)}, batch {self.batch_size}, {self.device})"
        )


def _resolve_device(device: str | torch.device) -> torch.device:
    """``"cuda"`` -> ``cuda:<current>`` so that a model already there is not copied (no CUDA use for CPU)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _check_counts(warmup: int, repeats: int) -> None:
    if warmup < 0:
        raise ConfigError(f"warmup: must be >= 0, got {warmup}")
    if repeats < 1:
        raise ConfigError(f"repeats: must be >= 1, got {repeats}")


@contextlib.contextmanager
def _threads(num_threads: int | None) -> Iterator[None]:
    if num_threads is None:
        yield
        return
    if num_threads < 1:
        raise ConfigError(f"num_threads: must be >= 1, got {num_threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Runner:
    """A model ready to time: on the target device and dtype (a copy when moving or casting), in eval mode."""

    def __init__(self, model: nn.Module, example_inputs: Any, device: torch.device, dtype: torch.dtype | None):
        self.original = model
        needs_copy = model_device(model) != device or dtype is not None
        self.model = copy.deepcopy(model) if needs_copy else model
        if needs_copy:
            self.model.to(device=device, dtype=dtype)

        def move(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                x = x.to(device)
                return x.to(dtype) if dtype is not None and x.is_floating_point() else x
            return x

        args, kwargs = as_call_args(example_inputs)
        self.args, self.kwargs = tree_map(move, args), tree_map(move, kwargs)
        first = next((t for t in list(self.args) + list(self.kwargs.values()) if isinstance(t, torch.Tensor)), None)
        self.batch_size = int(first.shape[0]) if first is not None and first.dim() > 0 else 1
        self.sync: Callable[[], None] = (
            (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
        )
        self.training = {m: m.training for m in model.modules()}

    def __enter__(self) -> _Runner:
        self.model.eval()
        return self

    def __exit__(self, *exc: object) -> None:
        for module, flag in self.training.items():
            module.training = flag

    def time_once(self) -> float:
        """Milliseconds of one forward pass, synchronized before and after on CUDA."""
        self.sync()
        start = time.perf_counter()
        self.model(*self.args, **self.kwargs)
        self.sync()
        return (time.perf_counter() - start) * 1000.0


def measure_latency(
    model: nn.Module,
    example_inputs: Any,
    *,
    device: str | torch.device = "cpu",
    warmup: int = 10,
    repeats: int = 50,
    dtype: torch.dtype | None = None,
    num_threads: int | None = None,
) -> LatencyReport:
    """Time ``repeats`` inference forward passes after ``warmup`` untimed ones.

    Runs under ``torch.inference_mode`` in eval mode (the train/eval flags are restored afterwards). When
    ``device`` or ``dtype`` differ from the model's, a copy is timed and the model itself is left alone. On CUDA
    each pass is synchronized before and after, so the times are of finished work. (A module that builds a cache
    tensor during its first forward would keep an inference tensor here; run one ordinary forward first if the
    model is trained afterwards.)

    Args:
        model: the model.
        example_inputs: a tensor, a tuple of inputs, or a mapping of keyword inputs; the batch size is the first
            dimension of the first tensor.
        device: where to run ("cpu", "cuda", "cuda:1", ...).
        warmup: untimed passes first (allocator, kernel selection, caches).
        repeats: timed passes.
        dtype: cast the model and floating inputs to this dtype (e.g. ``torch.float16``) on a copy.
        num_threads: intra-op CPU threads during the measurement (restored afterwards).

    Returns:
        A :class:`LatencyReport` with median and spread.
    """
    _check_counts(warmup, repeats)
    device = _resolve_device(device)
    with _threads(num_threads), torch.inference_mode(), _Runner(model, example_inputs, device, dtype) as runner:
        for _ in range(warmup):
            runner.time_once()
        samples = [runner.time_once() for _ in range(repeats)]
    return LatencyReport.from_samples(samples, str(device), runner.batch_size)


def compare_latency(
    model_a: nn.Module,
    model_b: nn.Module,
    example_inputs: Any,
    *,
    device: str | torch.device = "cpu",
    warmup: int = 10,
    repeats: int = 50,
    dtype: torch.dtype | None = None,
    num_threads: int | None = None,
) -> tuple[LatencyReport, LatencyReport, float]:
    """Time two models alternately in one process; ``speedup = median_a / median_b``.

    Passes are interleaved A B B A A B ..., so a slow spell of the machine (other processes, frequency changes)
    hits both models alike and the ratio of medians stays fair even when absolute times drift. Use this for every
    "compressed vs dense" speedup.

    Args:
        model_a: the reference (e.g. dense) model.
        model_b: the candidate (e.g. compressed) model.
        example_inputs: inputs both models accept.
        device, warmup, repeats, dtype, num_threads: as in :func:`measure_latency` (``warmup`` and ``repeats``
            per model).

    Returns:
        ``(report_a, report_b, speedup)``; speedup > 1 means ``model_b`` is faster.
    """
    _check_counts(warmup, repeats)
    device = _resolve_device(device)
    with (
        _threads(num_threads),
        torch.inference_mode(),
        _Runner(model_a, example_inputs, device, dtype) as run_a,
        _Runner(model_b, example_inputs, device, dtype) as run_b,
    ):
        for _ in range(warmup):
            run_a.time_once()
            run_b.time_once()
        samples_a: list[float] = []
        samples_b: list[float] = []
        for i in range(repeats):
            first, second = (run_a, run_b) if i % 2 == 0 else (run_b, run_a)
            t_first, t_second = first.time_once(), second.time_once()
            if first is run_a:
                samples_a.append(t_first)
                samples_b.append(t_second)
            else:
                samples_b.append(t_first)
                samples_a.append(t_second)
    report_a = LatencyReport.from_samples(samples_a, str(device), run_a.batch_size)
    report_b = LatencyReport.from_samples(samples_b, str(device), run_b.batch_size)
    speedup = report_a.median_ms / report_b.median_ms if report_b.median_ms > 0 else float("inf")
    return report_a, report_b, speedup
