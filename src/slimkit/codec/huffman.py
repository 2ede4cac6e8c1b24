"""Canonical, length-limited Huffman coding of integer symbols, vectorized both ways.

Only the code lengths are stored; the codes follow from them (canonical Huffman: symbols sorted by (length,
symbol) get consecutive codes). Encoding is a table lookup plus :func:`slimkit.codec.bits.write_codes`.

Decoding a variable-length code is sequential by nature, so the stream is cut into blocks of ``block`` symbols
whose starting bit offsets are stored (32 bits per block, ~0.03 bit per symbol at the default 1024). All blocks
of all streams are then decoded side by side: step ``j`` reads the next ``L`` bits of every block at once, looks
them up in a table indexed by those bits (every entry holds the symbol and its code length), and advances each
block by that length. A file's worth of streams therefore decodes in ``block`` vectorized steps.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from slimkit.codec.bits import words32, write_codes

MAX_CODE_LENGTH = 16
DEFAULT_BLOCK = 1024
MAX_BLOCK = 1 << 16  # the decoder takes one vectorized step per symbol of the longest block


def code_lengths(counts: np.ndarray, max_length: int = MAX_CODE_LENGTH) -> np.ndarray:
    """Huffman code length of each symbol (0 for symbols that never occur), none longer than ``max_length``.

    When the optimal code is too deep the counts are halved (rounding up, so no symbol disappears) and the
    code rebuilt, which flattens the tree at a tiny cost in size.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size > (1 << max_length):
        raise ValueError(f"alphabet of {counts.size} symbols needs codes longer than {max_length} bits")
    while True:
        lengths = _unlimited_lengths(counts)
        if int(lengths.max(initial=0)) <= max_length:
            return lengths.astype(np.uint8)
        counts = np.where(counts > 0, (counts + 1) // 2, 0)


def _unlimited_lengths(counts: np.ndarray) -> np.ndarray:
    used = np.flatnonzero(counts)
    lengths = np.zeros(counts.size, dtype=np.int64)
    if used.size == 1:
        lengths[used] = 1
    if used.size <= 1:
        return lengths
    # heap over the alphabet (not over the data): parent links, then depths from the root down
    parent = np.full(2 * used.size - 1, -1, dtype=np.int64)
    heap = [(int(counts[s]), i) for i, s in enumerate(used)]
    heapq.heapify(heap)
    node = used.size
    while len(heap) > 1:
        c1, a = heapq.heappop(heap)
        c2, b = heapq.heappop(heap)
        parent[a] = parent[b] = node
        heapq.heappush(heap, (c1 + c2, node))
        node += 1
    depth = np.zeros(parent.size, dtype=np.int64)
    for i in range(parent.size - 2, -1, -1):  # parents are created after children: walk root -> leaves
        depth[i] = depth[parent[i]] + 1
    lengths[used] = depth[: used.size]
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical code of each symbol from its length (codes of unused symbols are 0)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.int64)
    used = np.flatnonzero(lengths)
    if used.size == 0:
        return codes
    top = int(lengths.max())
    order = used[np.lexsort((used, lengths[used]))]  # by (length, symbol)
    spans = np.int64(1) << (top - lengths[order])
    starts = np.concatenate([[0], np.cumsum(spans)[:-1]])  # left-aligned code values are consecutive
    codes[order] = starts >> (top - lengths[order])
    return codes


def _decode_table(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(symbol, length) for every ``L``-bit window, where ``L`` is the longest code."""
    lengths = np.asarray(lengths, dtype=np.int64)
    used = np.flatnonzero(lengths)
    top = max(1, int(lengths.max(initial=0)))
    size = 1 << top
    if used.size == 0:
        return np.zeros(size, dtype=np.uint16), np.ones(size, dtype=np.uint8), top
    order = used[np.lexsort((used, lengths[used]))]
    spans = np.int64(1) << (top - lengths[order])
    table_sym = np.zeros(size, dtype=np.uint16)
    table_len = np.full(size, top, dtype=np.uint8)  # windows no code covers (only with a single symbol)
    filled = int(spans.sum())
    table_sym[:filled] = np.repeat(order, spans)
    table_len[:filled] = np.repeat(lengths[order], spans)
    return table_sym, table_len, top


@dataclass
class HuffmanStream:
    """An encoded symbol stream: code lengths, block start offsets (bits) and the packed code bits."""

    lengths: np.ndarray  # (alphabet,) uint8
    count: int
    block: int
    block_offsets: np.ndarray  # (num_blocks,) int64, first is 0
    data: bytes
    nbits: int

    @property
    def num_blocks(self) -> int:
        return -(-self.count // self.block) if self.count else 0

    def meta(self) -> dict[str, int]:
        return {"count": self.count, "alphabet": int(self.lengths.size), "block": self.block, "nbits": self.nbits}

    def to_bytes(self) -> bytes:
        """Code lengths (1 byte each), block offsets after the first (uint32 LE), then the code bits."""
        offsets = self.block_offsets[1:].astype("<u4").tobytes()
        return self.lengths.astype(np.uint8).tobytes() + offsets + self.data

    @classmethod
    def from_bytes(cls, data: bytes | memoryview, meta: dict) -> HuffmanStream:
        """Parse :meth:`to_bytes` output; raises ValueError if ``data`` is shorter or longer than ``meta`` says."""
        count, alphabet, block, nbits = (int(meta[k]) for k in ("count", "alphabet", "block", "nbits"))
        if min(count, alphabet, nbits) < 0 or not 1 <= block <= MAX_BLOCK or alphabet > (1 << MAX_CODE_LENGTH):
            raise ValueError(f"invalid Huffman stream parameters {meta}")
        if count > nbits:  # every code is at least 1 bit long, even with a one-symbol alphabet
            raise ValueError(f"Huffman stream claims {count} symbols but holds only {nbits} bits")
        num_blocks = -(-count // block) if count else 0
        head = alphabet + 4 * max(num_blocks - 1, 0)
        expected = head + (nbits + 7) // 8
        if len(data) != expected:
            raise ValueError(f"Huffman stream has {len(data)} bytes, expected {expected}")
        raw = np.frombuffer(data, dtype=np.uint8)
        lengths = raw[:alphabet].copy()
        if lengths.size and int(lengths.max()) > MAX_CODE_LENGTH:
            raise ValueError(f"code length above {MAX_CODE_LENGTH}")
        offsets = np.zeros(num_blocks, dtype=np.int64)
        offsets[1:] = np.frombuffer(data, dtype="<u4", count=max(num_blocks - 1, 0), offset=alphabet)
        if num_blocks and (np.any(np.diff(offsets) < block) or offsets[-1] + count - (num_blocks - 1) * block > nbits):
            raise ValueError("block offsets leave a block less than one bit per symbol")
        return cls(lengths, count, block, offsets, bytes(raw[head:]), nbits)


def encoded_bits(counts: np.ndarray, lengths: np.ndarray) -> int:
    """Bits the code bits of a stream with symbol histogram ``counts`` take (without table and offsets)."""
    return int(np.dot(np.asarray(counts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)))


def stream_bytes(counts: np.ndarray, lengths: np.ndarray, block: int = DEFAULT_BLOCK) -> int:
    """Bytes :meth:`HuffmanStream.to_bytes` will take, computed from the histogram alone."""
    count = int(np.sum(counts))
    num_blocks = -(-count // block) if count else 0
    return lengths.size + 4 * max(num_blocks - 1, 0) + (encoded_bits(counts, lengths) + 7) // 8


def huffman_bits_estimate(counts: np.ndarray, block: int = DEFAULT_BLOCK) -> float:
    """Approximate size in bits of a Huffman stream with histogram ``counts``: its entropy plus the code-length
    table and block offsets (Huffman is within one bit per symbol of the entropy, usually far closer)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return 0.0
    used = counts[counts > 0]
    entropy = float(-(used * np.log2(used / total)).sum())
    return entropy + 8.0 * counts.size + 32.0 * max(np.ceil(total / block) - 1, 0)


def huffman_encode(
    symbols: np.ndarray, alphabet: int, *, block: int = DEFAULT_BLOCK, lengths: np.ndarray | None = None
) -> HuffmanStream:
    """Huffman-code integer ``symbols`` in ``[0, alphabet)``.

    Args:
        symbols: (n,) integers.
        alphabet: number of possible symbols (at most 65536).
        block: symbols per independently decodable block (even).
        lengths: code lengths to use (default: optimal for this data, at most 16 bits).
    """
    symbols = np.asarray(symbols).ravel()
    if not 2 <= block <= MAX_BLOCK or block % 2:
        raise ValueError(f"block must be an even number in [2, {MAX_BLOCK}], got {block}")
    if lengths is None:
        counts = np.bincount(symbols, minlength=alphabet)  # raises on negative symbols
        if counts.size > alphabet:
            raise ValueError(f"symbols must lie in [0, {alphabet})")
        lengths = code_lengths(counts)
    lengths = np.asarray(lengths, dtype=np.uint8)
    codes = canonical_codes(lengths)
    n = symbols.size
    if n == 0:
        return HuffmanStream(lengths, 0, block, np.zeros(0, dtype=np.int64), b"", 0)
    if alphabet * alphabet <= 1 << 18:
        # code symbol pairs through an (alphabet**2) table: half the elements in every later pass
        pair_len = (lengths[:, None].astype(np.uint8) + lengths[None, :]).ravel()  # (A*A,)
        pair_code = ((codes[:, None] << lengths[None, :].astype(np.int64)) | codes[None, :]).ravel()
        half, odd = n // 2, n % 2
        pair = symbols[0 : 2 * half : 2].astype(np.int64) * alphabet + symbols[1 : 2 * half : 2]
        unit_codes = np.empty(half + odd, dtype=np.int64)
        unit_lengths = np.empty(half + odd, dtype=np.uint8)
        np.take(pair_code, pair, out=unit_codes[:half])
        np.take(pair_len, pair, out=unit_lengths[:half])
        if odd:
            unit_codes[-1], unit_lengths[-1] = codes[symbols[-1]], lengths[symbols[-1]]
        per_block = block // 2
    else:
        unit_codes, unit_lengths = codes[symbols], lengths[symbols]
        per_block = block
    data, nbits = write_codes(unit_codes, unit_lengths)
    block_bits = np.add.reduceat(unit_lengths.astype(np.int64), np.arange(0, unit_lengths.size, per_block))
    offsets = np.concatenate([[0], np.cumsum(block_bits)[:-1]]).astype(np.int64)
    return HuffmanStream(lengths, int(n), block, offsets, data, nbits)


def huffman_decode_many(streams: list[HuffmanStream]) -> list[np.ndarray]:
    """Decode several streams at once (all their blocks advance together); returns uint16 symbol arrays.

    Blocks advance as the rows of one (step, block) array, so streams are decoded in groups whose blocks hold
    similar numbers of symbols (within a factor of 2): no group pads short blocks to a much longer one, and
    the work arrays stay within 4 times the symbols decoded.

    Raises:
        ValueError: when a block's codes do not end exactly where the next block starts (corrupt stream).
    """
    out = [np.zeros(0, dtype=np.uint16) for _ in streams]
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(streams):
        if s.count:
            groups.setdefault((min(s.block, s.count) - 1).bit_length(), []).append(i)
    for members in groups.values():
        for i, symbols in zip(members, _decode_group([streams[i] for i in members])):
            out[i] = symbols
    return out


def _decode_group(live: list[HuffmanStream]) -> list[np.ndarray]:
    """Decode non-empty streams side by side (one row per block, ``max block`` vectorized steps)."""
    tables = [_decode_table(s.lengths) for s in live]
    table_sym = np.concatenate([t[0] for t in tables])
    table_len = np.concatenate([t[1] for t in tables])  # uint8: small tables stay in cache
    table_base = np.concatenate([[0], np.cumsum([t[0].size for t in tables])[:-1]]).astype(np.int64)
    byte_base = np.concatenate([[0], np.cumsum([len(s.data) for s in live])[:-1]]).astype(np.int64)
    most = max(min(s.block, s.count) for s in live)  # steps: symbols in the longest block
    buffer = np.frombuffer(b"".join(s.data for s in live), dtype=np.uint8)
    words = words32(buffer, pad_bytes=most * MAX_CODE_LENGTH // 8 + 8)

    # one row per block of every stream
    pos = np.concatenate([s.block_offsets + 8 * b for s, b in zip(live, byte_base)])  # (K,) bit offsets
    nblocks = np.array([s.num_blocks for s in live])
    base = np.repeat(table_base, nblocks)  # (K,)
    width = np.repeat(np.array([t[2] for t in tables], dtype=np.uint32), nblocks)  # (K,)
    block_counts = np.concatenate(
        [np.minimum(s.block, s.count - np.arange(s.num_blocks) * s.block) for s in live]
    )  # (K,) symbols in each block
    ends = np.concatenate([np.append(s.block_offsets[1:], s.nbits) + 8 * b for s, b in zip(live, byte_base)])
    start = pos.copy()

    out = np.empty((most, pos.size), dtype=np.uint16)  # (step, block)
    done_at = np.zeros(pos.size, dtype=np.int64)  # bit position after each block's last real symbol
    last_step = block_counts - 1
    steps, first = np.unique(last_step, return_index=True)
    order = np.argsort(last_step, kind="stable")
    finishing = dict(zip(steps.tolist(), np.split(order, np.searchsorted(last_step[order], steps)[1:])))
    # preallocated work arrays: each step is a few in-place passes over the K blocks
    rshift = (32 - width).astype(np.uint32)
    at, window, entry = np.empty_like(pos), np.empty(pos.size, np.uint32), np.empty_like(pos)
    bit, step = np.empty(pos.size, np.uint32), np.empty(pos.size, np.uint8)
    for j in range(most):
        np.right_shift(pos, 3, out=at)
        np.take(words, at, out=window)
        np.bitwise_and(pos, 7, out=bit, casting="unsafe")
        window <<= bit  # uint32: bits before the window fall off
        window >>= rshift
        np.add(window, base, out=entry)
        np.take(table_sym, entry, out=out[j])
        np.take(table_len, entry, out=step)
        pos += step
        blocks = finishing.get(j)
        if blocks is not None:
            done_at[blocks] = pos[blocks]
    if not np.array_equal(done_at, ends):
        bad = int(np.flatnonzero(done_at != ends)[0])
        raise ValueError(f"corrupt Huffman block {bad}: codes end at bit {done_at[bad] - start[bad]} of the block")
    valid = np.arange(most)[:, None] < block_counts[None, :]  # (step, block)
    flat = out.T[valid.T]  # block-major order = stream order
    return np.split(flat, np.cumsum([s.count for s in live])[:-1])


def huffman_decode(stream: HuffmanStream) -> np.ndarray:
    return huffman_decode_many([stream])[0]
