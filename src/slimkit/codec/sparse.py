"""Deep Compression's sparse layout: nonzero positions as relative index gaps of a fixed bit width.

Each stored entry records how many zeros precede it since the previous entry (its *gap*), in ``index_bits``
bits. A run of more than ``2**index_bits - 1`` zeros cannot be expressed, so a *filler* entry is inserted: it
skips ``2**index_bits - 1`` zeros and stores an explicit zero. Decoding needs no special case for fillers: it
writes their zero value at a position that is zero anyway. Zeros after the last entry are implied by the shape.

Example (index_bits=3, so gaps 0..7): nonzeros at positions 1, 4 and 15 -> gaps [1, 2, 7, 2] where the 7 is a
filler at position 12.
"""

from __future__ import annotations

import numpy as np


def sparse_entries(positions: np.ndarray, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaps for sorted nonzero ``positions``, with fillers wherever a gap overflows ``index_bits``.

    Returns:
        ``(gaps, source)``: (E,) int64 gaps and (E,) int64 index into ``positions`` of each entry's value, or -1
        for a filler (whose value is zero).
    """
    positions = np.asarray(positions, dtype=np.int64)
    span = 1 << index_bits
    zeros_before = np.diff(positions, prepend=-1) - 1  # (n,) zeros between consecutive nonzeros
    fillers = zeros_before // span  # (n,) fillers needed before each nonzero
    if not fillers.any():
        return zeros_before, np.arange(positions.size, dtype=np.int64)
    per_value = fillers + 1
    owner = np.repeat(np.arange(positions.size, dtype=np.int64), per_value)  # (E,)
    first = np.cumsum(per_value) - per_value  # index of each group's first entry
    is_value = np.zeros(owner.size, dtype=bool)
    is_value[first + fillers] = True  # the last entry of each group carries the value
    gaps = np.where(is_value, (zeros_before - fillers * span)[owner], span - 1)
    return gaps, np.where(is_value, owner, -1)


def count_entries(positions: np.ndarray, index_bits: int) -> int:
    """Number of entries (values + fillers) :func:`sparse_entries` would produce, without building them."""
    positions = np.asarray(positions, dtype=np.int64)
    zeros_before = np.diff(positions, prepend=-1) - 1
    return int(positions.size + (zeros_before >> index_bits).sum())


def plan_sparse(
    positions: np.ndarray, numel: int, value_bits: float, index_bits: int | None = None,
    candidates: range = range(2, 9),
) -> tuple[int, int, float]:
    """Choose the gap width for nonzero ``positions``: the one minimizing fixed-width storage of the entries.

    Returns:
        ``(index_bits, entries, bits)``: the width (``index_bits`` if given), the number of entries it
        produces, and ``entries * (index_bits + value_bits)``.
    """
    positions = np.asarray(positions, dtype=np.int64)
    zeros_before = (np.diff(positions, prepend=-1) - 1).astype(np.int32 if numel < 2**31 else np.int64)
    options = [index_bits] if index_bits else list(candidates)
    plans = []
    for b in options:
        entries = positions.size + int((zeros_before >> b).sum())
        plans.append((b, entries, entries * (b + value_bits)))
    return min(plans, key=lambda plan: plan[2])


def best_index_bits(positions: np.ndarray, value_bits: float, candidates: range = range(2, 9)) -> int:
    """The gap width minimizing ``entries * (index_bits + value_bits)`` (fixed-width storage of the entries)."""
    numel = int(positions[-1]) + 1 if len(positions) else 1
    return plan_sparse(positions, numel, value_bits, candidates=candidates)[0]


def entry_positions(gaps: np.ndarray, numel: int) -> np.ndarray:
    """Absolute positions of the entries; raises ValueError if they run past ``numel``."""
    positions = np.cumsum(np.asarray(gaps, dtype=np.int64) + 1) - 1
    if positions.size and int(positions[-1]) >= numel:
        raise ValueError(f"sparse entries reach position {int(positions[-1])} of a tensor with {numel} elements")
    return positions
