"""Mixed precision: per-layer weight bit widths chosen from measured sensitivity under a size budget.

Sensitivity of layer ``l`` at ``b`` bits is the relative output error ``||f_q(x) - f(x)||^2 / ||f(x)||^2`` on
the calibration batches when only ``l``'s weight is quantized to ``b`` bits. Assuming errors add up, choosing
widths is a multiple-choice knapsack: minimize the summed sensitivity subject to the summed weight bytes staying
under the budget. It is solved exactly on a discretized capacity (dynamic programming, vectorized over capacity)
or greedily (lower the width whose error grows least per byte saved).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np
import torch
from torch import nn

from slimkit.core.errors import ConfigError, DataError
from slimkit.core.forward import training_mode
from slimkit.core.modules import FilterFn
from slimkit.quant.api import check_no_quant_layers, register_quantize_handler, select_layers
from slimkit.quant.config import QuantConfig, QuantMode
from slimkit.quant.fake_quant import FakeQuantize
from slimkit.quant.fold import fold_batchnorm
from slimkit.quant.report import QuantReport


class Allocation(str, Enum):
    KNAPSACK = "knapsack"
    GREEDY = "greedy"


@dataclass(frozen=True)
class MixedPrecisionConfig:
    """Choose per-layer weight widths from ``candidate_bits`` to fit a size budget, then quantize.

    Attributes:
        candidate_bits: widths to choose from (each 2..8).
        budget_ratio: budget as a fraction of the targeted layers' fp32 weight bytes (0.25 = 8 bits on average);
            ignored when ``budget_bytes`` is given.
        budget_bytes: budget for the targeted layers' quantized weights plus scales.
        allocation: ``knapsack`` (exact on a 2,000-step capacity grid) or ``greedy``.
        quant: everything else about the quantization (activation bits, observers, PTQ/QAT, ...).
    """

    candidate_bits: tuple[int, ...] = (2, 4, 8)
    budget_ratio: float = 0.125
    budget_bytes: int | None = None
    allocation: Allocation = Allocation.KNAPSACK
    quant: QuantConfig = field(default_factory=QuantConfig)
    calibration_batches: int = 8

    def __post_init__(self) -> None:
        bits = tuple(sorted(set(int(b) for b in self.candidate_bits)))
        if not bits or any(not 2 <= b <= 8 for b in bits):
            raise ValueError(f"candidate_bits must be widths in [2, 8], got {self.candidate_bits}")
        object.__setattr__(self, "candidate_bits", bits)
        object.__setattr__(self, "allocation", Allocation(self.allocation))
        if not 0.0 < self.budget_ratio <= 1.0:
            raise ValueError(f"budget_ratio must be in (0, 1], got {self.budget_ratio}")
        if self.budget_bytes is not None and self.budget_bytes <= 0:
            raise ValueError(f"budget_bytes must be positive, got {self.budget_bytes}")


def layer_size_bytes(module: nn.Module, bits: int) -> int:
    """Weight bytes at ``bits`` plus one fp32 scale per output channel."""
    return math.ceil(module.weight.numel() * bits / 8) + 4 * module.weight.shape[0]


@torch.no_grad()
def measure_sensitivity(
    model: nn.Module,
    layers: list[tuple[str, nn.Module]],
    inputs: list[torch.Tensor],
    candidate_bits: tuple[int, ...],
    config: QuantConfig,
) -> dict[str, dict[int, float]]:
    """Relative output error of quantizing each layer alone at each width (weights only, per ``config``)."""
    if not inputs:
        raise DataError("mixed precision: calibration_data is needed to measure per-layer sensitivity")
    result: dict[str, dict[int, float]] = {}
    with training_mode(model, False):
        reference = [model(x) for x in inputs]
        norm = sum(float(r.pow(2).sum()) for r in reference) or 1.0
        for fqn, module in layers:
            original = module.weight.detach().clone()
            result[fqn] = {}
            for bits in candidate_bits:
                q = FakeQuantize(bits, symmetric=config.weight_symmetric, axis=config.weight_axis,
                                 observer=config.weight_observer, percentile=config.percentile)
                q.calibrate_from(original)
                module.weight.copy_(q(original))
                err = sum(float((model(x) - r).pow(2).sum()) for x, r in zip(inputs, reference))
                result[fqn][bits] = err / norm
                module.weight.copy_(original)
    return result


def allocate_bits(
    sensitivity: dict[str, dict[int, float]],
    sizes: dict[str, dict[int, int]],
    budget_bytes: float,
    allocation: Allocation | str = Allocation.KNAPSACK,
) -> dict[str, int]:
    """Per-layer widths minimizing summed sensitivity with summed size <= ``budget_bytes``.

    Raises:
        ConfigError: when even the narrowest widths exceed the budget.
    """
    names = list(sensitivity)
    smallest = sum(min(sizes[n].values()) for n in names)
    if smallest > budget_bytes:
        raise ConfigError(
            f"mixed precision: budget {int(budget_bytes)} bytes is below the smallest reachable size {smallest} bytes"
        )
    if Allocation(allocation) is Allocation.GREEDY:
        return _greedy(names, sensitivity, sizes, budget_bytes)
    return _knapsack(names, sensitivity, sizes, budget_bytes)


def _greedy(names, sensitivity, sizes, budget) -> dict[str, int]:
    bits = {n: max(sensitivity[n]) for n in names}
    total = sum(sizes[n][bits[n]] for n in names)
    while total > budget:
        best, best_rate = None, math.inf
        for n in names:
            lower = [b for b in sensitivity[n] if b < bits[n]]
            if not lower:
                continue
            b = max(lower)
            saved = sizes[n][bits[n]] - sizes[n][b]
            rate = (sensitivity[n][b] - sensitivity[n][bits[n]]) / max(saved, 1)
            if rate < best_rate:
                best, best_rate = (n, b), rate
        assert best is not None  # feasible, checked by the caller
        n, b = best
        total -= sizes[n][bits[n]] - sizes[n][b]
        bits[n] = b
    return bits


def _knapsack(names, sensitivity, sizes, budget, steps: int = 2000) -> dict[str, int]:
    unit = budget / steps
    dp = np.zeros(steps + 1)  # dp[c]: least summed error of the layers so far within capacity c units
    choices = []
    for n in names:
        options = sorted(sensitivity[n])
        new = np.full(steps + 1, np.inf)
        pick = np.full(steps + 1, -1)
        for i, b in enumerate(options):
            w = math.ceil(sizes[n][b] / unit - 1e-9)
            if w > steps:
                continue
            cand = np.full(steps + 1, np.inf)
            cand[w:] = dp[: steps + 1 - w] + sensitivity[n][b]
            better = cand < new
            new[better], pick[better] = cand[better], i
        dp = new
        choices.append((options, pick))
    if not np.isfinite(dp[steps]):  # discretization rounding made it infeasible: fall back to greedy
        return _greedy(names, sensitivity, sizes, budget)
    bits, c = {}, steps
    for n, (options, pick) in zip(reversed(names), reversed(choices)):
        b = options[int(pick[c])]
        bits[n] = b
        c -= math.ceil(sizes[n][b] / unit - 1e-9)
    return {n: bits[n] for n in names}


@register_quantize_handler(MixedPrecisionConfig, name="mixed")
def quantize_mixed(
    model: nn.Module, config: MixedPrecisionConfig, calibration: list[torch.Tensor], filter_fn: FilterFn | None
) -> QuantReport:
    from slimkit.quant.uniform import quantize_uniform

    check_no_quant_layers(model)
    base = config.quant
    model.eval()
    folded = fold_batchnorm(model) if base.fold_bn else []
    layers, _ = select_layers(model, filter_fn=filter_fn, ignore=base.ignore, keep_first_last=base.keep_first_last)
    sensitivity = measure_sensitivity(model, layers, calibration, config.candidate_bits, base)
    sizes = {fqn: {b: layer_size_bytes(m, b) for b in config.candidate_bits} for fqn, m in layers}
    fp32_bytes = sum(4 * m.weight.numel() for _, m in layers)
    budget = config.budget_bytes if config.budget_bytes is not None else config.budget_ratio * fp32_bytes
    bits = allocate_bits(sensitivity, sizes, budget, config.allocation)
    final = replace(base, layer_bits=bits, fold_bn=False, mode=QuantMode(base.mode))
    report = quantize_uniform(model, final, calibration, filter_fn)
    report.folded_bn = folded
    report.sensitivity = sensitivity
    return report
