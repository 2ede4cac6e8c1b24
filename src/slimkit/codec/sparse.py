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

from slimkit.codec.huffman import huffman_bits_estimate


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


def gap_histogram(positions: np.ndarray) -> np.ndarray:
    """``hist[g]`` = how many nonzeros follow a run of exactly ``g`` zeros (before any filler splitting)."""
    positions = np.asarray(positions, dtype=np.int64)
    return np.bincount(np.diff(positions, prepend=-1) - 1)


def plan_gaps(
    hist: np.ndarray, value_bits: float, *, index_bits: int | None = None, huffman: bool = True,
    candidates: range = range(2, 9),
) -> tuple[int, int, float]:
    """Choose the gap width that minimizes the estimated size of a sparse tensor.

    Works on the gap histogram alone: with width ``b`` a run of ``g`` zeros becomes ``g >> b`` fillers (gap
    ``2**b - 1``) plus one entry with gap ``g % 2**b``, so the histogram of stored gaps, their Huffman size and
    the entry count follow without building any entry.

    Returns:
        ``(index_bits, entries, bits)``: the width, the entries it produces, and the estimated total bits
        (gap stream, fixed-width or Huffman whichever is smaller, plus ``entries * value_bits``).
    """
    hist = np.asarray(hist, dtype=np.int64)
    runs = np.arange(hist.size, dtype=np.int64)
    nonzero = int(hist.sum())
    best: tuple[int, int, float] | None = None
    for b in [index_bits] if index_bits else candidates:
        fillers = int(np.dot(hist, runs >> b))
        entries = nonzero + fillers
        gap_bits = float(entries * b)
        if huffman and entries:
            stored = np.bincount(runs & ((1 << b) - 1), weights=hist, minlength=1 << b)
            stored[(1 << b) - 1] += fillers
            gap_bits = min(gap_bits, huffman_bits_estimate(stored))
        plan = (b, entries, gap_bits + entries * value_bits)
        if best is None or plan[2] < best[2]:
            best = plan
    assert best is not None
    return best


def count_entries(positions: np.ndarray, index_bits: int) -> int:
    """Number of entries (values + fillers) :func:`sparse_entries` would produce, without building them."""
    positions = np.asarray(positions, dtype=np.int64)
    zeros_before = np.diff(positions, prepend=-1) - 1
    return int(positions.size + (zeros_before >> index_bits).sum())


def best_index_bits(positions: np.ndarray, value_bits: float, candidates: range = range(2, 9)) -> int:
    """The gap width minimizing fixed-width storage ``entries * (index_bits + value_bits)``."""
    return plan_gaps(gap_histogram(positions), value_bits, huffman=False, candidates=candidates)[0]


def entry_positions(gaps: np.ndarray, numel: int) -> np.ndarray:
    """Absolute positions of the entries; raises ValueError if they run past ``numel``."""
    positions = np.cumsum(np.asarray(gaps, dtype=np.int64) + 1) - 1
    if positions.size and int(positions[-1]) >= numel:
        raise ValueError(f"sparse entries reach position {int(positions[-1])} of a tensor with {numel} elements")
    return positions
