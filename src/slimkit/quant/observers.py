"""Observers: watch tensors during calibration and propose the real range ``[lo, hi]`` to quantize.

Each observer keeps per-tensor or per-channel statistics (``axis``). Choices differ in how they treat outliers:
``minmax`` keeps them all, ``moving_average`` smooths batch extremes, ``percentile`` drops the tail, ``mse``
searches the clipping range that minimizes the quantization error itself. Users add their own with
``OBSERVERS.add("name", cls)``.
"""

from __future__ import annotations

from enum import Enum

import torch

from slimkit.core.registry import Registry
from slimkit.quant.primitives import choose_qparams, fake_quantize, quant_range

_MAX_SAMPLES = 1 << 16  # values kept per batch (per channel row) for percentile/MSE statistics


class ObserverKind(str, Enum):
    MINMAX = "minmax"
    MOVING_AVERAGE = "moving_average"
    PERCENTILE = "percentile"
    MSE = "mse"


def _rows(x: torch.Tensor, axis: int | None) -> torch.Tensor:
    """View ``x`` as ``(channels, values)``; one row for per-tensor statistics."""
    x = x.detach().float()
    if axis is None:
        return x.reshape(1, -1)
    return x.movedim(axis, 0).reshape(x.shape[axis], -1)


def _subsample(rows: torch.Tensor, limit: int = _MAX_SAMPLES) -> torch.Tensor:
    if rows.shape[1] <= limit:
        return rows
    index = torch.linspace(0, rows.shape[1] - 1, limit, device=rows.device).long()  # deterministic, spread out
    return rows[:, index]


class Observer:
    """Base: running min/max; subclasses change how the range is proposed.

    Args:
        bits, symmetric: the target code (the MSE observer needs them to measure error).
        axis: channel axis for per-channel ranges, ``None`` for per-tensor.
    """

    def __init__(self, bits: int = 8, symmetric: bool = False, axis: int | None = None, **_: float) -> None:
        self.bits = bits
        self.symmetric = symmetric
        self.axis = axis
        self.lo: torch.Tensor | None = None
        self.hi: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        rows = _rows(x, self.axis)
        lo, hi = rows.min(dim=1).values, rows.max(dim=1).values
        self._merge(lo, hi)

    def _merge(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        if self.lo is None:
            self.lo, self.hi = lo, hi
        else:
            self.lo, self.hi = torch.minimum(self.lo, lo), torch.maximum(self.hi, hi)

    def range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The proposed ``(lo, hi)``; shape ``(C,)`` per channel, ``()`` per tensor."""
        if self.lo is None or self.hi is None:
            raise ValueError("observer saw no data; pass calibration_data with at least one batch")
        return self._shape(self.lo), self._shape(self.hi)

    def _shape(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(()) if self.axis is None else t

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = self.range()
        return choose_qparams(lo, hi, self.bits, self.symmetric)


class MinMaxObserver(Observer):
    """The full range seen: no value is ever clipped, at the cost of resolution when outliers exist."""


class MovingAverageMinMaxObserver(Observer):
    """Exponential moving average of per-batch extremes (``momentum`` weights the newest batch)."""

    def __init__(self, *args, momentum: float = 0.1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.momentum = momentum

    def _merge(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        if self.lo is None:
            self.lo, self.hi = lo, hi
        else:
            m = self.momentum
            self.lo = (1 - m) * self.lo + m * lo
            self.hi = (1 - m) * self.hi + m * hi


class PercentileObserver(Observer):
    """Averages per-batch ``percentile`` and ``100 - percentile`` quantiles: the far tail is clipped."""

    def __init__(self, *args, percentile: float = 99.99, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}")
        self.percentile = percentile
        self.batches = 0

    def update(self, x: torch.Tensor) -> None:
        rows = _subsample(_rows(x, self.axis))
        q = torch.tensor([1 - self.percentile / 100, self.percentile / 100], device=rows.device)
        lo, hi = torch.quantile(rows, q, dim=1)
        if self.lo is None:
            self.lo, self.hi = lo, hi
        else:  # running mean over batches
            n = self.batches
            self.lo = (self.lo * n + lo) / (n + 1)
            self.hi = (self.hi * n + hi) / (n + 1)
        self.batches += 1


class MSEObserver(Observer):
    """Searches ``[a * lo, a * hi]`` over ``grid`` clipping factors ``a`` for the least quantization MSE.

    The search is one batched tensor expression per chunk of candidates: values ``(A, C, N)`` are fake-quantized
    with their candidate's parameters and the squared error reduced over ``N``.
    """

    def __init__(self, *args, grid: int = 80, min_factor: float = 0.2, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.grid = int(grid)
        self.min_factor = float(min_factor)
        self.samples: list[torch.Tensor] = []

    def update(self, x: torch.Tensor) -> None:
        super().update(x)
        self.samples.append(_subsample(_rows(x, self.axis)))

    def range(self) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = super().range()
        values = torch.cat(self.samples, dim=1)  # (C, N)
        values = _subsample(values, 4 * _MAX_SAMPLES)
        lo, hi = lo.reshape(-1), hi.reshape(-1)
        factors = torch.linspace(self.min_factor, 1.0, self.grid, device=values.device)
        qmin, qmax = quant_range(self.bits, self.symmetric)
        errors = []
        chunk = max(1, (1 << 24) // max(values.numel(), 1))
        for start in range(0, self.grid, chunk):  # loop over candidate chunks, not over values
            a = factors[start : start + chunk].reshape(-1, 1)  # (A, 1)
            scale, zp = choose_qparams(a * lo, a * hi, self.bits, self.symmetric)  # (A, C)
            v = values.unsqueeze(0)  # (1, C, N)
            deq = fake_quantize(v, scale.unsqueeze(-1), zp.unsqueeze(-1), qmin, qmax)
            errors.append((deq - v).pow(2).mean(dim=2))  # (A, C)
        best = torch.cat(errors).argmin(dim=0)  # (C,)
        f = factors[best]
        return self._shape(f * lo), self._shape(f * hi)


OBSERVERS: Registry[type[Observer]] = Registry("observer")
OBSERVERS.add(ObserverKind.MINMAX.value, MinMaxObserver)
OBSERVERS.add(ObserverKind.MOVING_AVERAGE.value, MovingAverageMinMaxObserver)
OBSERVERS.add(ObserverKind.PERCENTILE.value, PercentileObserver)
OBSERVERS.add(ObserverKind.MSE.value, MSEObserver)


def make_observer(
    kind: str | ObserverKind, *, bits: int, symmetric: bool, axis: int | None, percentile: float = 99.99
) -> Observer:
    """An observer from its registered name."""
    name = kind.value if isinstance(kind, ObserverKind) else kind
    cls = OBSERVERS.get(name)
    if cls is PercentileObserver:
        return cls(bits=bits, symmetric=symmetric, axis=axis, percentile=percentile)
    return cls(bits=bits, symmetric=symmetric, axis=axis)
