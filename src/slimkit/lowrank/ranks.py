"""Choosing ranks: a kept-energy fraction per layer, or one params/MACs budget shared by the whole model.

The budget allocation is greedy on "energy per cost": every layer starts at rank 1 in each mode, and the next
rank unit bought is always the one that adds the most kept energy (a share of that layer's weight energy) per
extra parameter (or MAC), until the budget is spent. Cheap layers with a flat spectrum get more rank than
expensive layers whose energy sits in a few directions. A layer of several modes (Tucker-2) grows along one
path: each step adds a unit to the mode whose next singular value carries the larger share of its mode's energy,
so the ranks stay balanced by energy. (Buying modes independently lets the cheap mode run to full rank while
the expensive one stays at 1 -- a rank-1 output mode destroys a layer however wide its input mode is.)
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from slimkit.core.errors import ConfigError


def energy_rank(spectrum: np.ndarray, energy: float) -> int:
    """Smallest rank whose leading units keep at least ``energy`` of the spectrum (at least 1)."""
    kept = np.cumsum(spectrum)
    return max(1, int(np.searchsorted(kept, energy * kept[-1] - 1e-12) + 1))


@dataclass
class BudgetItem:
    """One layer as the allocator sees it: per-mode energy spectra, rank limits, and the cost of given ranks."""

    spectra: Sequence[np.ndarray]
    max_ranks: tuple[int, ...]
    cost: Callable[[tuple[int, ...]], int]
    limit: int | None = None  # cost of the layer left dense: reaching it means factoring is not worth it


@dataclass
class Allocation:
    """Ranks per item, and which items wanted to grow to (or past) their dense cost."""

    ranks: list[tuple[int, ...]]
    saturated: list[bool]


def allocate_ranks(items: Sequence[BudgetItem], budget: int) -> Allocation:
    """Ranks for every item so that the summed cost stays within ``budget``, energy-per-cost greedy.

    An item whose next affordable unit would make it cost as much as its dense ``limit`` stops growing and is
    flagged ``saturated``: the caller should keep that layer dense and allocate again without it.

    Raises:
        ConfigError: when even rank 1 everywhere costs more than ``budget``.
    """
    ranks = [tuple(1 for _ in item.max_ranks) for item in items]
    used = sum(item.cost(r) for item, r in zip(items, ranks))
    if used > budget:
        raise ConfigError(f"budget of {budget:,} is below what rank 1 in every decomposed layer needs ({used:,})")
    version = [0] * len(items)
    saturated = [False] * len(items)
    heap: list[tuple[float, int, int, int, int]] = []

    def push(index: int) -> None:
        item, current = items[index], ranks[index]
        open_modes = [
            m for m, r in enumerate(current) if r < item.max_ranks[m] and r < len(item.spectra[m])
        ]
        if not open_modes:
            return
        mode = max(open_modes, key=lambda m: (float(item.spectra[m][current[m]]), -current[m]))
        bigger = current[:mode] + (current[mode] + 1,) + current[mode + 1 :]
        delta = item.cost(bigger) - item.cost(current)
        gain = float(item.spectra[mode][current[mode]]) / len(current)
        heapq.heappush(heap, (-gain / max(delta, 1e-9), index, mode, version[index], delta))

    for index in range(len(items)):
        push(index)
    while heap:
        _, index, mode, seen, delta = heapq.heappop(heap)
        if seen != version[index] or used + delta > budget:
            continue
        current = ranks[index]
        bigger = current[:mode] + (current[mode] + 1,) + current[mode + 1 :]
        limit = items[index].limit
        if limit is not None and items[index].cost(bigger) >= limit:
            saturated[index] = True
            version[index] += 1  # stop growing this item
            continue
        ranks[index] = bigger
        used += delta
        version[index] += 1
        push(index)
    return Allocation(ranks, saturated)
