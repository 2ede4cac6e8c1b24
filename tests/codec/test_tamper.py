"""A truncated, altered or foreign file is refused with a CodecError that names the file and the problem."""

import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import slimkit
from slimkit.codec import inspect_compressed
from slimkit.codec.container import MAGIC, pack_file, unpack_file
from slimkit.core.errors import CodecError
from slimkit.quant.kmeans import share_weights
from slimkit.state import load_compressed, save_compressed


@pytest.fixture(scope="module")
def saved(tmp_path_factory, prune_module):
    torch.manual_seed(0)
    model = slimkit.create_model("codec_test_mlp")
    prune_module(model, 0.8)
    share_weights(model, bits=4)
    path = tmp_path_factory.mktemp("slim") / "good.slim"
    save_compressed(model, path)
    return path, path.read_bytes()


def _write(tmp_path, data):
    path = tmp_path / "bad.slim"
    path.write_bytes(data)
    return path


def test_bad_magic(tmp_path, saved):
    path = _write(tmp_path, b"PK\x03\x04" + saved[1][4:])
    with pytest.raises(CodecError, match=r"bad\.slim: bad magic"):
        load_compressed(path)


def test_unknown_version(tmp_path, saved):
    data = bytearray(saved[1])
    data[8:12] = struct.pack("<I", 99)
    with pytest.raises(CodecError, match="unsupported .slim format version 99"):
        load_compressed(_write(tmp_path, bytes(data)))


def test_checksum_mismatch(tmp_path, saved):
    data = bytearray(saved[1])
    data[len(data) - 100] ^= 0x10  # inside the payload
    with pytest.raises(CodecError, match="checksum mismatch"):
        load_compressed(_write(tmp_path, bytes(data)))


def test_truncation_names_the_tensor(tmp_path, saved):
    data = saved[1][: len(saved[1]) - 200]
    with pytest.raises(CodecError, match=r"truncated section '\w+' of tensor '[\w.]+'"):
        load_compressed(_write(tmp_path, data))


def test_missing_file(tmp_path):
    with pytest.raises(CodecError, match="no such .slim file"):
        inspect_compressed(tmp_path / "nope.slim")


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_truncation_and_bit_flip_is_refused(saved, data):
    good = saved[1]
    cut = data.draw(st.integers(0, len(good) - 1))
    with pytest.raises(CodecError):
        unpack_file(good[:cut], "x.slim")
    pos, bit = data.draw(st.integers(0, len(good) - 1)), data.draw(st.integers(0, 7))
    flipped = bytearray(good)
    flipped[pos] ^= 1 << bit
    with pytest.raises(CodecError, match="x.slim"):
        unpack_file(bytes(flipped), "x.slim")


def test_consistent_checksum_but_lying_header_is_refused(tmp_path):
    # a file whose checksum is right but whose header promises a section beyond the payload
    header = {"tensors": [{"name": "w", "shape": [4], "dtype": "float32", "layout": "dense", "values": "raw",
                           "entries": 4, "nonzero": 4, "sections": {"values": [0, 16]}}], "spec": None}
    path = _write(tmp_path, pack_file(header, b"\x00" * 8))
    with pytest.raises(CodecError, match="truncated section 'values' for tensor 'w'"):
        load_compressed(path, model=torch.nn.Module())


def test_loading_never_unpickles(saved):
    assert saved[1].startswith(MAGIC)
    assert b"\x80\x04" not in saved[1][:16]  # not a pickle/torch.save stream
