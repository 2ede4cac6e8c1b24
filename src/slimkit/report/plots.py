"""Plots written as PNG files (matplotlib, headless): curves and per-layer bars.

Each function writes atomically and returns the path, so stages can list their plots in their metrics.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from slimkit.core.io import atomic_write_bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    hline: float | None = None,
) -> Path:
    """One line per named curve, e.g. accuracy vs sparsity per layer; ``hline`` marks a target."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, (xs, ys) in curves.items():
        ax.plot(list(xs), list(ys), marker="o", markersize=3, label=name)
    if hline is not None:
        ax.axhline(hline, color="gray", linestyle="--", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize="small", ncol=2 if len(curves) > 8 else 1)
    return _save(fig, path)


def plot_bars(
    series: Mapping[str, Sequence[float]],
    labels: Sequence[str],
    path: str | os.PathLike,
    *,
    ylabel: str,
    title: str = "",
) -> Path:
    """Grouped bars per label, e.g. channels per layer before and after pruning."""
    plt = _pyplot()
    import numpy as np

    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(labels)), 4.5))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + i * width - 0.4 + width / 2, list(values), width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=75, fontsize="x-small")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_histogram(
    samples: Mapping[str, Sequence[float]], path: str | os.PathLike, *, xlabel: str, title: str = "", bins: int = 60
) -> Path:
    """Overlaid histograms, e.g. |gamma| of BN layers before and after sparsity training."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, values in samples.items():
        ax.hist(list(values), bins=bins, alpha=0.55, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return _save(fig, path)
