"""Rank rules: energy ranks, and the global budget allocation (within budget, energy per cost, balanced modes)."""

from __future__ import annotations

import numpy as np
import pytest

from slimkit.core.errors import ConfigError
from slimkit.lowrank import allocate_ranks, energy_rank
from slimkit.lowrank.ranks import BudgetItem


def test_energy_rank() -> None:
    spectrum = np.array([0.5, 0.3, 0.1, 0.1])
    assert [energy_rank(spectrum, e) for e in (0.1, 0.5, 0.8, 0.81, 0.9, 1.0)] == [1, 1, 2, 3, 3, 4]


def _svd_item(spectrum: np.ndarray, cost_per_rank: int) -> BudgetItem:
    return BudgetItem([spectrum], (len(spectrum),), lambda r: r[0] * cost_per_rank)


def test_budget_is_respected_and_goes_where_energy_per_cost_is_highest() -> None:
    steep = _svd_item(np.array([0.9, 0.05, 0.03, 0.02]), 10)
    flat = _svd_item(np.full(4, 0.25), 10)
    allocation = allocate_ranks([steep, flat], budget=50)
    ranks = [r[0] for r in allocation.ranks]
    assert sum(ranks) * 10 <= 50
    assert ranks[1] > ranks[0]  # the flat spectrum needs more rank for its energy
    # a cheaper layer gets more rank for the same spectrum
    cheap, dear = _svd_item(np.full(8, 0.125), 1), _svd_item(np.full(8, 0.125), 4)
    alloc = allocate_ranks([cheap, dear], budget=20)
    assert alloc.ranks[0][0] > alloc.ranks[1][0]
    assert alloc.ranks[0][0] * 1 + alloc.ranks[1][0] * 4 <= 20


def test_budget_below_rank_one_raises() -> None:
    with pytest.raises(ConfigError, match="rank 1"):
        allocate_ranks([_svd_item(np.full(4, 0.25), 10)], budget=5)


def test_saturated_layer_is_flagged() -> None:
    item = BudgetItem([np.full(4, 0.25)], (4,), lambda r: r[0] * 10, limit=30)
    allocation = allocate_ranks([item], budget=1000)
    assert allocation.saturated == [True] and allocation.ranks == [(2,)]


def test_two_mode_layer_grows_balanced() -> None:
    # Tucker-like cost where the input mode is much cheaper than the output mode: ranks still grow together
    item = BudgetItem([np.full(16, 1 / 16), np.full(16, 1 / 16)], (16, 16), lambda r: 1 * r[0] + 20 * r[1] + r[0] * r[1])
    (r_in, r_out), = allocate_ranks([item], budget=400).ranks
    assert abs(r_in - r_out) <= 1 and r_in > 1
