"""Hostile files with a correct checksum are refused with a FormatError naming the problem, and refusing is cheap.

Each file is built by hand (an attacker recomputes the SHA-256). Peak memory is measured in a subprocess that
loads every file in turn: ``ru_maxrss`` only grows, so each file's reading bounds the cost of all before it.
"""

import hashlib
import json
import subprocess
import sys
import zlib

import numpy as np
import pytest

from slimkit.codec import container, load_state
from slimkit.codec.container import FLAG_ZLIB_HEADER, FORMAT_VERSION, MAGIC, pack_file, unpack_file
from slimkit.codec.huffman import MAX_BLOCK, HuffmanStream, huffman_encode
from slimkit.core.errors import CodecError, FormatError
from slimkit.core.limits import ENV_VAR, MAX_HEADER_BYTES

BOMB_BYTES = 300 << 20  # inflated size of the header bomb: far over the cap, and over the memory bound below
MAX_RSS_GROWTH_KIB = 200 << 10  # ru_maxrss is in KiB on Linux


def _frame(stored_header: bytes, payload: bytes = b"", flags: int = FLAG_ZLIB_HEADER) -> bytes:
    """The bytes of a .slim file around an already stored header, with a correct checksum."""
    body = (
        MAGIC + FORMAT_VERSION.to_bytes(4, "little") + flags.to_bytes(4, "little")
        + len(stored_header).to_bytes(8, "little") + stored_header + len(payload).to_bytes(8, "little") + payload
    )
    return body + hashlib.sha256(body).digest()


def _zlib_bomb() -> bytes:
    """A valid JSON header (``{"tensors": []}`` padded with spaces) that inflates to ``BOMB_BYTES``."""
    deflate = zlib.compressobj(1)
    chunk = b" " * (1 << 20)
    parts = [deflate.compress(b'{"tensors": []')]
    parts += [deflate.compress(chunk) for _ in range(BOMB_BYTES >> 20)]
    return b"".join([*parts, deflate.compress(b"}"), deflate.flush()])


def _record(name: str, shape: list, **fields) -> dict:
    return {"name": name, "shape": shape, "dtype": "float32", "nonzero": 0, **fields}


def _dense_claim() -> bytes:
    record = _record("big.weight", [1 << 34], layout="dense", values="raw", entries=1 << 34,
                     sections={"values": [0, 16]})
    return pack_file({"tensors": [record], "spec": None}, bytes(16))


def _sparse_claim() -> bytes:
    record = _record("big.weight", [1 << 17, 1 << 17], layout="sparse", values="raw", entries=1, index_bits=8,
                     gaps={"coding": "fixed", "count": 1, "bits": 8}, sections={"gaps": [0, 1], "values": [1, 4]})
    return pack_file({"tensors": [record], "spec": None}, bytes(5))


def _huffman_claim(count: int, block: int = 1024) -> bytes:
    """A dense codebook tensor whose index stream claims ``count`` symbols in one byte of codes."""
    offsets = 4 * (-(-count // block) - 1)
    # code lengths, block offsets (an attacker need not ship 4 GiB of them: the header alone claims), codes
    indices = bytes([1, 1]) + bytes(offsets if offsets < 1 << 20 else 0) + b"\x00"
    record = _record("emb.weight", [4], layout="dense", values="codebook", entries=4, clusters=2, codebook_size=2,
                     indices={"coding": "huffman", "count": count, "alphabet": 2, "block": block, "nbits": 8},
                     sections={"codebook": [0, 8], "indices": [8, len(indices)]})
    return pack_file({"tensors": [record], "spec": None}, bytes(8) + indices)


_PROBE = r"""
import json, resource, sys
import slimkit
import slimkit.codec
from slimkit.core.errors import SlimkitError

loaders = {"load_state": slimkit.codec.load_state, "load_compressed": slimkit.load_compressed}
def peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
slimkit.codec.load_state(sys.argv[1])  # warm up: every lazy import of the load path
base = peak_kib()
results = {}
for arg in sys.argv[2:]:
    loader, path = arg.split("=", 1)
    try:
        loaders[loader](path)
        error = None
    except SlimkitError as err:
        error = [type(err).__name__, str(err)]
    results[path] = {"error": error, "growth_kib": peak_kib() - base}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """Load every hostile file in one subprocess; ``probe[name]`` is its error and the peak-memory growth."""
    folder = tmp_path_factory.mktemp("attacks")
    bomb = _frame(_zlib_bomb(), bytes(1000))
    files = {
        "bomb": ("load_compressed", bomb),
        "bomb_cut": ("load_state", bomb[:-500]),  # cut inside the payload: the header is read for the detail
        "dense": ("load_state", _dense_claim()),
        "sparse": ("load_state", _sparse_claim()),
        "huffman": ("load_state", _huffman_claim(1 << 40)),
    }
    warm = folder / "warm.slim"
    warm.write_bytes(pack_file({"tensors": [_record("w", [2], layout="dense", values="raw", entries=2,
                                                      sections={"values": [0, 8]})]}, bytes(8)))
    args = []
    for name, (loader, data) in files.items():
        (folder / f"{name}.slim").write_bytes(data)
        args.append(f"{loader}={folder / name}.slim")
    done = subprocess.run([sys.executable, "-c", _PROBE, str(warm), *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: results[f"{folder / name}.slim"] for name in files}


def _refused(result: dict, pattern: str) -> str:
    assert result["error"] is not None, "the hostile file was loaded"
    kind, message = result["error"]
    assert kind == "FormatError", message
    assert result["growth_kib"] < MAX_RSS_GROWTH_KIB, f"refusing took {result['growth_kib'] >> 10} MiB: {message}"
    assert pattern in message, message
    return message


def test_zlib_bomb_header_is_refused_by_the_cap(probe):
    message = _refused(probe["bomb"], "section 'header' inflates to more than")
    assert "bomb.slim" in message and str(MAX_HEADER_BYTES) in message


def test_truncated_zlib_bomb_is_refused_cheaply(probe):
    _refused(probe["bomb_cut"], "truncated")


def test_dense_tensor_claiming_2_34_elements(probe):
    message = _refused(probe["dense"], "'big.weight'")
    assert str(4 << 34) in message and "load limit" in message and ENV_VAR in message


def test_sparse_tensor_claiming_2_34_elements(probe):
    message = _refused(probe["sparse"], "'big.weight'")
    assert str((4 << 34) + 8) in message and ENV_VAR in message  # the values, and the one-symbol gap stream


def test_huffman_stream_claiming_2_40_symbols(probe):
    message = _refused(probe["huffman"], "'emb.weight'")
    assert str((8 << 40) + 16) in message  # 8 bytes per decoded symbol, and the tensor's own 16 bytes


def test_checksum_is_verified_before_the_header_is_inflated(monkeypatch):
    data = bytearray(_frame(zlib.compress(b'{"tensors": []}')))
    data[-1] ^= 1

    def inflate(*args, **kwargs):
        raise AssertionError("the header was inflated before the checksum was checked")

    monkeypatch.setattr(container, "_parse_header", inflate)
    with pytest.raises(FormatError, match="x.slim: checksum mismatch"):
        unpack_file(bytes(data), "x.slim")


def test_header_nested_too_deeply():
    with pytest.raises(FormatError, match=r"x.slim: unreadable header \(nested too deeply\)"):
        unpack_file(_frame(zlib.compress(b"[" * 100_000)), "x.slim")


def test_incomplete_zlib_header():
    with pytest.raises(FormatError, match="incomplete zlib stream"):
        unpack_file(_frame(zlib.compress(b'{"tensors": []}')[:-4]), "x.slim")


def test_uncompressed_header_is_read():
    header, payload = unpack_file(_frame(b'{"tensors": []}', b"ab", flags=0))
    assert header == {"tensors": []} and bytes(payload) == b"ab"


@pytest.mark.parametrize(
    ("shape", "dtype", "pattern"),
    [
        ([2, -1], "float32", "shape must be a list of non-negative integers"),
        ([2.0], "float32", "shape must be a list of non-negative integers"),
        ([True], "float32", "shape must be a list of non-negative integers"),
        ("4", "float32", "shape must be a list of non-negative integers"),
        ([4], "complex64", "unknown dtype 'complex64'"),
    ],
)
def test_record_shape_and_dtype_are_checked_first(tmp_path, shape, dtype, pattern):
    record = {**_record("w", shape, layout="dense", values="raw", entries=4, sections={"values": [0, 16]}),
              "dtype": dtype}
    path = tmp_path / "bad.slim"
    path.write_bytes(pack_file({"tensors": [record]}, bytes(16)))
    with pytest.raises(FormatError, match=f"bad.slim: tensor 'w': {pattern}"):
        load_state(path)


def test_negative_stream_count_is_refused(tmp_path):
    path = tmp_path / "bad.slim"
    record = _record("w", [4], layout="sparse", values="raw", entries=1, index_bits=8,
                     gaps={"coding": "fixed", "count": -5, "bits": 8}, sections={"gaps": [0, 0], "values": [0, 4]})
    path.write_bytes(pack_file({"tensors": [record]}, bytes(4)))
    with pytest.raises(FormatError, match="tensor 'w': gaps: stream count must be a non-negative integer"):
        load_state(path)


def test_huffman_count_beyond_its_bits_is_refused(tmp_path):
    # within the load budget (8 MiB of symbols), but one byte of codes cannot hold a million symbols
    path = tmp_path / "bad.slim"
    path.write_bytes(_huffman_claim(1 << 20, block=MAX_BLOCK))
    with pytest.raises(CodecError, match="tensor 'emb.weight'.*claims 1048576 symbols but holds only 8 bits"):
        load_state(path)


def test_huffman_block_shorter_than_one_bit_per_symbol_is_refused():
    stream = huffman_encode(np.arange(4000) % 3, 3, block=1000)
    offsets = stream.block_offsets.copy()
    offsets[2] = offsets[1] + 999  # block 1 would need 1000 symbols in 999 bits
    forged = HuffmanStream(stream.lengths, stream.count, stream.block, offsets, stream.data, stream.nbits)
    with pytest.raises(ValueError, match="less than one bit per symbol"):
        HuffmanStream.from_bytes(forged.to_bytes(), forged.meta())


def test_huffman_block_above_the_maximum_is_refused():
    with pytest.raises(ValueError, match="invalid Huffman stream parameters"):
        HuffmanStream.from_bytes(bytes(3), {"count": 8, "alphabet": 2, "block": MAX_BLOCK + 2, "nbits": 8})
    with pytest.raises(ValueError, match="block must be an even number"):
        huffman_encode(np.zeros(10, dtype=np.int64), 2, block=MAX_BLOCK + 2)


def test_load_limit_follows_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "claim.slim"
    path.write_bytes(_dense_claim())
    monkeypatch.setenv(ENV_VAR, str(1 << 40))  # trusted: the claim passes, and fails on its bytes
    with pytest.raises(CodecError, match="tensor 'big.weight': 4 values stored for 17179869184 entries"):
        load_state(path)
    small = tmp_path / "small.slim"
    small.write_bytes(pack_file({"tensors": [_record("w", [4], layout="dense", values="raw", entries=4,
                                                       sections={"values": [0, 16]})]}, bytes(16)))
    assert load_state(small)[0]["w"].shape == (4,)
    monkeypatch.setenv(ENV_VAR, "15")
    with pytest.raises(FormatError, match=f"claims 16 bytes .* over the load limit of 15 bytes .* {ENV_VAR}=16"):
        load_state(small)
