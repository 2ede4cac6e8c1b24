import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from slimkit.codec.bits import pack_fixed, unpack_fixed, write_codes
from slimkit.codec.huffman import (
    HuffmanStream,
    canonical_codes,
    code_lengths,
    huffman_decode,
    huffman_decode_many,
    huffman_encode,
)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 25), st.data())
def test_fixed_width_round_trip(width, data):
    values = data.draw(arrays(np.int64, st.integers(0, 300), elements=st.integers(0, 2**width - 1)))
    packed = pack_fixed(values, width)
    assert len(packed) == (values.size * width + 7) // 8
    assert np.array_equal(unpack_fixed(packed, values.size, width), values)


def test_write_codes_matches_bit_string():
    codes, lengths = np.array([1, 0, 5, 3]), np.array([1, 2, 3, 8])
    data, nbits = write_codes(codes, lengths)
    expected = "1" + "00" + "101" + "00000011"
    assert nbits == 14
    assert data == int(expected.ljust(16, "0"), 2).to_bytes(2, "big")


def test_code_lengths_are_optimal_and_prefix_free():
    counts = np.array([45, 13, 12, 16, 9, 5])  # the CLRS example: optimal cost 224
    lengths = code_lengths(counts)
    assert int((counts * lengths).sum()) == 224
    codes = canonical_codes(lengths)
    words = [format(int(c), f"0{int(n)}b") for c, n in zip(codes, lengths)]
    assert not any(a != b and b.startswith(a) for a in words for b in words)
    assert sum(2.0 ** -int(n) for n in lengths) == 1.0  # complete code (Kraft equality)


def test_length_limit_holds_on_fibonacci_counts():
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])
    lengths = code_lengths(np.array(fib), max_length=16)
    assert lengths.max() <= 16 and lengths.min() >= 1
    assert sum(2.0 ** -int(n) for n in lengths) <= 1.0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.sampled_from([2, 4, 64, 1024]), st.data())
def test_huffman_round_trip(alphabet, block, data):
    skew = data.draw(st.floats(0.05, 1.0))
    n = data.draw(st.integers(0, 3000))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    symbols = np.minimum(rng.geometric(skew, n) - 1, alphabet - 1)
    stream = huffman_encode(symbols, alphabet, block=block)
    parsed = HuffmanStream.from_bytes(stream.to_bytes(), stream.meta())
    out = huffman_decode(parsed)
    assert out.dtype == np.uint16 and np.array_equal(out, symbols)


def test_huffman_beats_fixed_width_on_skewed_data():
    rng = np.random.default_rng(0)
    symbols = np.clip(np.round(rng.normal(16, 2, 100_000)), 0, 31).astype(np.int64)
    stream = huffman_encode(symbols, 32)
    assert stream.nbits < 0.75 * 5 * symbols.size  # entropy ~3.05 bits vs 5 fixed


def test_decode_many_equals_separate_decodes():
    rng = np.random.default_rng(1)
    inputs = [rng.integers(0, a, n) for a, n in [(3, 10), (256, 5000), (1, 7), (40, 0), (17, 2049)]]
    streams = [huffman_encode(x, int(x.max(initial=0)) + 1 if x.size else 1, block=512) for x in inputs]
    for x, y in zip(inputs, huffman_decode_many(streams)):
        assert np.array_equal(x, y)


def test_corrupt_stream_is_detected():
    symbols = np.random.default_rng(2).integers(0, 10, 5000)
    stream = huffman_encode(symbols, 10, block=256)
    stream.block_offsets = stream.block_offsets.copy()
    stream.block_offsets[3] += 1  # a block boundary that no code ends on
    with pytest.raises(ValueError, match="corrupt Huffman block"):
        huffman_decode(stream)


def test_stream_size_mismatch_is_refused():
    stream = huffman_encode(np.arange(100) % 7, 7)
    with pytest.raises(ValueError, match="expected"):
        HuffmanStream.from_bytes(stream.to_bytes()[:-1], stream.meta())
