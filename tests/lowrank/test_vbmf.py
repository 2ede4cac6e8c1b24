"""EVBMF finds the rank of a noisy low-rank matrix and the noise level, and nothing in pure noise."""

from __future__ import annotations

import numpy as np
import pytest

from slimkit.lowrank import evbmf
from slimkit.lowrank.vbmf import _tau_bar


@pytest.mark.parametrize(("rows", "cols", "rank", "noise"), [(50, 80, 5, 0.1), (64, 288, 12, 0.5), (100, 40, 8, 1.0)])
def test_recovers_rank_and_noise_variance(rows: int, cols: int, rank: int, noise: float) -> None:
    rng = np.random.default_rng(rows)
    signal = rng.normal(size=(rows, rank)) @ rng.normal(size=(rank, cols))
    result = evbmf(signal + noise * rng.normal(size=(rows, cols)))
    assert result.rank == rank
    assert result.sigma2 == pytest.approx(noise**2, rel=0.15)


def test_pure_noise_has_rank_zero() -> None:
    assert evbmf(np.random.default_rng(1).normal(size=(40, 60))).rank == 0


def test_known_variance_threshold_and_transpose_invariance() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=(30, 3)) @ rng.normal(size=(3, 50)) + 0.2 * rng.normal(size=(30, 50))
    a, b = evbmf(y, sigma2=0.04), evbmf(y.T, sigma2=0.04)
    assert a == b and a.rank == 3


def test_tau_bar_matches_published_constant() -> None:
    # Nakajima et al. (2013): tau_bar ~ 2.5129 sqrt(alpha)
    assert _tau_bar(1.0) == pytest.approx(2.5129, abs=1e-4)
    assert _tau_bar(0.25) == pytest.approx(2.5129 * 0.5, rel=0.05)
