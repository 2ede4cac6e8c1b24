"""Mixed precision: sensitivity, budgeted allocation, end to end."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from slimkit.core.errors import ConfigError
from slimkit.quant import MixedPrecisionConfig, QuantConfig, allocate_bits, measure_sensitivity, quantize


def _problem(seed: int) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(seed)
    sens, sizes = {}, {}
    for i in range(5):
        n = int(torch.randint(100, 2000, (1,), generator=g))
        base = float(torch.rand(1, generator=g)) + 0.1
        sens[f"l{i}"] = {b: base * 4.0 ** (-b) for b in (2, 4, 8)}
        sizes[f"l{i}"] = {b: math.ceil(n * b / 8) for b in (2, 4, 8)}
    return sens, sizes


@pytest.mark.parametrize("seed", range(4))
def test_knapsack_matches_brute_force_and_greedy_is_feasible(seed: int) -> None:
    sens, sizes = _problem(seed)
    names = list(sens)
    budget = 0.6 * sum(sizes[n][8] for n in names)
    best = math.inf
    for combo in itertools.product((2, 4, 8), repeat=len(names)):
        if sum(sizes[n][b] for n, b in zip(names, combo)) <= budget:
            best = min(best, sum(sens[n][b] for n, b in zip(names, combo)))
    for method in ("knapsack", "greedy"):
        bits = allocate_bits(sens, sizes, budget, method)
        assert sum(sizes[n][bits[n]] for n in names) <= budget
        cost = sum(sens[n][bits[n]] for n in names)
        if method == "knapsack":
            assert cost <= best * (1 + 1e-3) + 1e-12  # optimal up to the capacity grid
        else:
            assert cost >= best - 1e-12


def test_infeasible_budget_is_refused() -> None:
    sens, sizes = _problem(0)
    with pytest.raises(ConfigError, match="below the smallest reachable size"):
        allocate_bits(sens, sizes, 10, "knapsack")


def test_sensitivity_falls_with_bits(cnn: nn.Module, batches: list[torch.Tensor]) -> None:
    layers = [(f, m) for f, m in cnn.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    sens = measure_sensitivity(cnn, layers, batches, (2, 4, 8), QuantConfig())
    for fqn in sens:
        assert sens[fqn][2] > sens[fqn][4] > sens[fqn][8] >= 0


def test_mixed_precision_respects_budget(cnn: nn.Module, images: torch.Tensor, batches: list[torch.Tensor]) -> None:
    weights = {f: m.weight.numel() for f, m in cnn.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    budget = int(0.09 * 4 * sum(weights.values()))  # below all-4-bit plus scales: some layers must take 2 bits
    report = quantize(cnn, MixedPrecisionConfig(budget_bytes=budget, quant=QuantConfig(activation_bits=None)),
                      calibration_data=batches)
    bits = report.layer_bits
    assert set(bits) == set(weights)
    used = sum(math.ceil(weights[f] * b / 8) + 4 * cnn.get_submodule(f).weight.shape[0] for f, b in bits.items())
    assert used <= budget
    assert min(bits.values()) == 2 and set(report.sensitivity) == set(weights)
    assert cnn(images).isfinite().all()
