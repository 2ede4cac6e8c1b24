import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from slimkit.codec.sparse import best_index_bits, count_entries, entry_positions, sparse_entries


def test_paper_example_with_filler():
    # index_bits=3: gaps up to 7; the run of 10 zeros before position 15 needs one filler at position 12
    gaps, source = sparse_entries(np.array([1, 4, 15]), 3)
    assert gaps.tolist() == [1, 2, 7, 2]
    assert source.tolist() == [0, 1, -1, 2]
    assert entry_positions(gaps, 16).tolist() == [1, 4, 12, 15]


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 8), st.data())
def test_gaps_round_trip_including_overflow(numel, index_bits, data):
    density = data.draw(st.floats(0.0, 1.0))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    mask = rng.random(numel) < density
    positions = np.flatnonzero(mask)
    gaps, source = sparse_entries(positions, index_bits)
    assert gaps.size == count_entries(positions, index_bits)
    assert gaps.min(initial=0) >= 0 and gaps.max(initial=0) < 2**index_bits
    at = entry_positions(gaps, numel)
    assert np.array_equal(at[source >= 0], positions)  # values land where they were
    assert np.array_equal(source[source >= 0], np.arange(positions.size))
    assert not mask[at[source < 0]].any()  # fillers only on zeros


def test_best_index_bits_prefers_narrow_gaps_for_dense_data():
    dense = np.arange(0, 10_000, 2)  # every other element: gap 1 always
    sparse = np.arange(0, 100_000, 200)
    assert best_index_bits(dense, 5) == 2
    assert best_index_bits(sparse, 5) == 8


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3000), st.integers(2, 8), st.integers(0, 2**32 - 1))
def test_plan_counts_entries_exactly(numel, index_bits, seed):
    from slimkit.codec.sparse import gap_histogram, plan_gaps

    positions = np.flatnonzero(np.random.default_rng(seed).random(numel) < 0.1)
    bits, entries, cost = plan_gaps(gap_histogram(positions), 5, index_bits=index_bits)
    assert bits == index_bits
    assert entries == sparse_entries(positions, index_bits)[0].size == count_entries(positions, index_bits)
    assert cost >= entries * 5
