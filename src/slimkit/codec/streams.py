"""Integer streams (index gaps, codebook indices) stored either at a fixed bit width or Huffman-coded.

The encoder picks whichever is smaller for each stream (Huffman pays for its code-length table and block
offsets, so a tiny stream may be cheaper fixed). The header records the choice and the stream's parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slimkit.codec.bits import pack_fixed, unpack_fixed
from slimkit.codec.huffman import DEFAULT_BLOCK, HuffmanStream, code_lengths, huffman_encode, stream_bytes


def fixed_width(alphabet: int) -> int:
    """Bits per symbol of fixed-width storage for ``alphabet`` symbols (at least 1)."""
    return max(1, int(alphabet - 1).bit_length())


@dataclass
class EncodedStream:
    meta: dict  # {"coding": "fixed"|"huffman", "count", ...}
    data: bytes


def encode_stream(symbols: np.ndarray, alphabet: int, *, huffman: bool = True, block: int = DEFAULT_BLOCK) -> EncodedStream:
    """Store ``symbols`` (each in ``[0, alphabet)``) in the smaller of fixed-width and Huffman coding."""
    symbols = np.asarray(symbols).ravel()
    width = fixed_width(alphabet)
    fixed_bytes = (symbols.size * width + 7) // 8
    if huffman and symbols.size:
        counts = np.bincount(symbols, minlength=alphabet)
        if counts.size > alphabet:
            raise ValueError(f"symbols must lie in [0, {alphabet})")
        lengths = code_lengths(counts)
        if stream_bytes(counts, lengths, block) < fixed_bytes:
            stream = huffman_encode(symbols, alphabet, block=block, lengths=lengths)
            return EncodedStream({"coding": "huffman", **stream.meta()}, stream.to_bytes())
    return EncodedStream({"coding": "fixed", "count": int(symbols.size), "bits": width}, pack_fixed(symbols, width))


DECODED_SYMBOL_BYTES = 8  # a decoded symbol ends up as an int64 (fixed-width symbols, gap positions)


def stream_decoded_bytes(meta: dict) -> int:
    """Bytes decoding a stream with parameters ``meta`` allocates for its symbols, from its ``count`` alone.

    Raises:
        ValueError: unknown coding or a ``count`` that is not a non-negative integer.
    """
    if meta.get("coding") not in ("fixed", "huffman"):
        raise ValueError(f"unknown stream coding {meta.get('coding')!r}")
    count = meta.get("count")
    if type(count) is not int or count < 0:
        raise ValueError(f"stream count must be a non-negative integer, got {count!r}")
    return count * DECODED_SYMBOL_BYTES


def parse_stream(meta: dict, data: bytes | memoryview) -> HuffmanStream | np.ndarray:
    """A Huffman stream (decoded later, many at once) or the already decoded fixed-width symbols.

    Raises:
        ValueError: on inconsistent parameters or a section of the wrong size.
    """
    coding = meta.get("coding")
    if coding == "huffman":
        return HuffmanStream.from_bytes(data, meta)
    if coding == "fixed":
        count, width = int(meta["count"]), int(meta["bits"])
        if count < 0 or not 1 <= width <= 25:
            raise ValueError(f"invalid fixed-width stream parameters count={count} bits={width}")
        if len(data) != (count * width + 7) // 8:
            raise ValueError(f"fixed-width stream has {len(data)} bytes, expected {(count * width + 7) // 8}")
        return unpack_fixed(np.frombuffer(data, dtype=np.uint8), count, width)
    raise ValueError(f"unknown stream coding {coding!r}")
