"""Vectorized bit streams: write many variable-length codes at once, read fixed-width windows at many offsets.

Codes are written MSB-first into 32-bit words. A code (at most 32 bits) starting at bit ``offset`` lies in word
``offset // 32`` and possibly spills into the next. Codes are sorted by their word and never share a bit, so one
``bitwise_or.reduceat`` over each word's run of codes plus one scatter of the spills writes everything: a handful
of vectorized passes instead of a loop over symbols.
"""

from __future__ import annotations

import numpy as np

MAX_CODE_BITS = 32  # (offset % 32) + length must fit in a 64-bit window


def write_codes(codes: np.ndarray, lengths: np.ndarray) -> tuple[bytes, int]:
    """Concatenate ``codes[i]`` (its low ``lengths[i]`` bits, MSB first) into a byte string.

    Args:
        codes: (n,) unsigned code values.
        lengths: (n,) code lengths in bits, each in [1, 32].

    Returns:
        ``(data, nbits)``: the packed bytes (last byte zero-padded) and the number of bits written.
    """
    lengths = np.asarray(lengths)
    if lengths.size == 0:
        return b"", 0
    if int(lengths.min()) < 1 or int(lengths.max()) > MAX_CODE_BITS:
        raise ValueError(f"code lengths must lie in [1, {MAX_CODE_BITS}]")
    ends = np.cumsum(lengths, dtype=np.int64)
    nbits = int(ends[-1])
    offsets = ends - lengths  # (n,) first bit of each code
    del ends
    word = offsets >> 5  # 32-bit word each code starts in; codes are sorted by it
    shift = np.uint64(64) - (offsets & 31).astype(np.uint64) - lengths.astype(np.uint64)
    placed = np.asarray(codes).astype(np.uint64) << shift  # (n,) code inside a 64-bit window at its word
    del shift, offsets
    out = np.zeros((nbits + 31) // 32 + 1, dtype=np.uint64)
    starts = np.flatnonzero(word[1:] != word[:-1]) + 1
    starts = np.concatenate([np.zeros(1, dtype=starts.dtype), starts])
    # codes starting in the same word own disjoint bits of it: OR them together per word
    out[word[starts]] = np.bitwise_or.reduceat(placed >> np.uint64(32), starts)
    # at most one code per word spills into the next word
    low = placed & np.uint64(0xFFFFFFFF)
    spill = np.flatnonzero(low)
    out[word[spill] + 1] |= low[spill]
    return out.astype(">u4").tobytes()[: (nbits + 7) // 8], nbits


def words32(data: np.ndarray, pad_bytes: int = 0) -> np.ndarray:
    """Big-endian uint32 word starting at every byte of ``data`` (zero-padded): reads any window of <= 25 bits."""
    buf = np.zeros(data.size + pad_bytes + 4, dtype=np.uint32)
    buf[: data.size] = data
    return (buf[:-3] << 24) | (buf[1:-2] << 16) | (buf[2:-1] << 8) | buf[3:]


def read_windows(words: np.ndarray, offsets: np.ndarray, width: int | np.ndarray) -> np.ndarray:
    """The ``width`` bits starting at each bit offset, as integers (``words`` from :func:`words32`)."""
    w = words[offsets >> 3] << (offsets & 7).astype(np.uint32)  # uint32: high bits fall off
    return (w >> (32 - np.asarray(width, dtype=np.uint32))).astype(np.int64)


def pack_fixed(values: np.ndarray, width: int) -> bytes:
    """Pack non-negative integers below ``2**width`` at ``width`` bits each (MSB first)."""
    values = np.asarray(values, dtype=np.int64).ravel()
    if values.size and (values.min() < 0 or values.max() >= (1 << width)):
        raise ValueError(f"values out of range for {width}-bit packing")
    if width in (8, 16):  # byte-aligned: a dtype conversion is the packing
        return values.astype(">u2" if width == 16 else np.uint8).tobytes()
    if values.size % 2 == 0 and 2 * width <= MAX_CODE_BITS:  # pairs: half the elements to place
        values = (values[0::2] << width) | values[1::2]
        width *= 2
    data, _ = write_codes(values, np.full(values.size, width, dtype=np.uint8))
    return data


def unpack_fixed(data: bytes | np.ndarray, count: int, width: int) -> np.ndarray:
    """Inverse of :func:`pack_fixed`: ``count`` integers of ``width`` bits; raises ValueError if data is short."""
    if not 1 <= width <= 25:
        raise ValueError(f"unpacking supports widths 1..25, got {width}")
    raw = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if raw.size * 8 < count * width:
        raise ValueError(f"{raw.size} bytes cannot hold {count} values of {width} bits")
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if width in (8, 16):  # byte-aligned: no bit arithmetic needed
        return raw[: count * width // 8].view(">u2" if width == 16 else np.uint8).astype(np.int64)
    offsets = np.arange(count, dtype=np.int64) * width
    return read_windows(words32(raw), offsets, width)
