"""Empirical variational Bayesian matrix factorization (EVBMF): how many components a noisy matrix really holds.

Kim et al. (2015, "Compression of deep convolutional neural networks for fast and low power mobile applications")
pick Tucker-2 ranks by running VBMF on the mode-0 and mode-1 unfoldings of a convolution kernel. The global analytic
solution of Nakajima, Sugiyama, Babacan and Tomioka (2013, "Global analytic solution of fully-observed variational
Bayesian matrix factorization", JMLR 14) makes this cheap: with the noise variance known, the EVB estimator keeps
exactly the singular values above a closed-form threshold, and the unknown noise variance is the minimizer of a
one-dimensional free energy over a bounded interval. Everything below is vectorized over the singular values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VBMFResult:
    """Rank kept by EVBMF, the estimated noise variance and the singular-value threshold it implies."""

    rank: int
    sigma2: float
    threshold: float


def _tau_bar(alpha: float) -> float:
    """The zero of ``log(t + 1) + alpha * log(t / alpha + 1) - t`` (about ``2.5129 * sqrt(alpha)``)."""
    from scipy.optimize import brentq  # here: scipy.optimize costs a second to import

    return float(brentq(lambda t: np.log1p(t) + alpha * np.log1p(t / alpha) - t, 1e-9, 1e4))


def _free_energy(sigma2: float, s2: np.ndarray, L: int, M: int, residual: float, x_bar: float) -> float:
    """EVB free energy (up to constants) as a function of the noise variance, components optimized out."""
    alpha = L / M
    x = s2 / (M * sigma2)
    big = x[x > x_bar]
    small = x[x <= x_bar]
    tau = 0.5 * (big - (1 + alpha) + np.sqrt((big - (1 + alpha)) ** 2 - 4 * alpha))
    energy = np.sum(small - np.log(small))
    energy += np.sum(big - tau) + np.sum(np.log((tau + 1) / big)) + alpha * np.sum(np.log(tau / alpha + 1))
    return float(energy + residual / (M * sigma2) + (L - len(s2)) * np.log(sigma2))


def evbmf(matrix: np.ndarray, *, sigma2: float | None = None) -> VBMFResult:
    """Rank of ``matrix`` under EVBMF (Nakajima et al. 2013), estimating the noise variance when not given.

    Args:
        matrix: a 2-D array (e.g. a kernel unfolding).
        sigma2: known noise variance; estimated by minimizing the free energy when ``None``.

    Returns:
        the kept rank (0 when the matrix is indistinguishable from noise), the noise variance and the threshold.
    """
    from scipy.optimize import minimize_scalar  # here: scipy.optimize costs a second to import

    Y = np.asarray(matrix, dtype=np.float64)
    if Y.ndim != 2 or min(Y.shape) == 0:
        raise ValueError(f"evbmf needs a non-empty 2-D matrix, got shape {Y.shape}")
    if Y.shape[0] > Y.shape[1]:
        Y = Y.T
    L, M = Y.shape
    s = np.linalg.svd(Y, compute_uv=False)
    s2 = s**2
    alpha = L / M
    tau_bar = _tau_bar(alpha)
    x_bar = (1 + tau_bar) * (1 + alpha / tau_bar)
    residual = max(float(np.sum(Y**2) - np.sum(s2)), 0.0)
    if sigma2 is None:
        if not np.any(s2 > 0):
            return VBMFResult(0, 0.0, 0.0)
        last = int(min(np.ceil(L / (1 + alpha)) - 1, L)) - 1  # largest index that may hold signal
        tail = s2[last + 1 :]
        upper = (np.sum(s2) + residual) / (L * M)
        lower = max(tail[0] / (M * x_bar), float(np.mean(tail)) / M) if tail.size else upper * 1e-6
        lower = max(lower, upper * 1e-12)
        if lower >= upper:
            sigma2 = upper
        else:
            scale = 1.0 / lower  # condition the 1-D search
            found = minimize_scalar(
                _free_energy,
                bounds=(lower * scale, upper * scale),
                args=(s2 * scale, L, M, residual * scale, x_bar),
                method="bounded",
            )
            sigma2 = float(found.x) / scale
    threshold = float(np.sqrt(M * sigma2 * x_bar))
    return VBMFResult(int(np.sum(s > threshold)), float(sigma2), threshold)
