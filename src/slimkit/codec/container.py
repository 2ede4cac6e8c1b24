"""The ``.slim`` container framing: magic, version, compressed JSON header, raw payload, SHA-256.

Layout (all integers little-endian; see docs/format.md)::

    magic      8 bytes   b"\\x89SLIM\\r\\n\\x1a"
    version    u32       FORMAT_VERSION
    flags      u32       bit 0: header is zlib-compressed
    hlen       u64       header length in bytes (as stored)
    header     hlen      UTF-8 JSON (zlib-compressed when flag 0 is set)
    plen       u64       payload length in bytes
    payload    plen      tensor sections, at the offsets the header gives
    sha256     32 bytes  over every byte above

Nothing is ever unpickled; a reader needs only ``json``, ``zlib`` and ``hashlib``. A reader trusts nothing
the file claims before it is checked: lengths against the file's size, then the SHA-256, then the header inflated
under a cap (:mod:`slimkit.core.limits`); :func:`tensor_sizes` lets a loader check the tensors' claimed sizes
against its budget before decoding.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from slimkit.codec.streams import stream_decoded_bytes
from slimkit.codec.tensor import DTYPES
from slimkit.core.errors import CodecError, FormatError
from slimkit.core.io import atomic_write
from slimkit.core.limits import MAX_HEADER_BYTES

MAGIC = b"\x89SLIM\r\n\x1a"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
FLAG_ZLIB_HEADER = 1
_PREAMBLE = struct.Struct("<8sIIQ")  # magic, version, flags, hlen
_U64 = struct.Struct("<Q")
DIGEST_BYTES = 32
_INFLATE_CHUNK = 1 << 20


def _frame(header: dict[str, Any], payload_bytes: int) -> tuple[bytes, bytes]:
    text = json.dumps(header, separators=(",", ":"), sort_keys=False).encode()
    stored = zlib.compress(text, 9)
    return _PREAMBLE.pack(MAGIC, FORMAT_VERSION, FLAG_ZLIB_HEADER, len(stored)) + stored, _U64.pack(payload_bytes)


def pack_file(header: dict[str, Any], payload: bytes) -> bytes:
    """Frame ``header`` (JSON-ready) and ``payload`` into the bytes of a ``.slim`` file."""
    head, plen = _frame(header, len(payload))
    body = head + plen + payload
    return body + hashlib.sha256(body).digest()


def write_file(path: str | os.PathLike, header: dict[str, Any], chunks: list[bytes]) -> int:
    """Write the file atomically, streaming the payload ``chunks`` (no joined copy); returns its size in bytes."""
    head, plen = _frame(header, sum(len(c) for c in chunks))
    digest = hashlib.sha256()

    def write(f: Any) -> None:
        for part in (head, plen, *chunks):
            digest.update(part)
            f.write(part)
        f.write(digest.digest())

    atomic_write(path, write)
    return len(head) + len(plen) + sum(len(c) for c in chunks) + DIGEST_BYTES


def _truncation_detail(header: dict[str, Any] | None, available: int) -> str:
    """Name the first tensor section that the truncated payload no longer holds ("" if the header cannot tell)."""
    try:
        for record in (header or {}).get("tensors", []):
            for section, (offset, length) in record.get("sections", {}).items():
                if offset + length > available:
                    return (
                        f"; truncated section {section!r} of tensor {record.get('name')!r} "
                        f"(needs payload bytes {offset}..{offset + length}, only {available} present)"
                    )
    except (AttributeError, TypeError, ValueError):
        pass  # the checksum was not verified: the header may be anything
    return ""


def unpack_file(data: bytes | memoryview, source: str = "<bytes>") -> tuple[dict[str, Any], memoryview]:
    """Check framing, version, lengths and checksum, then parse the header; return ``(header, payload)``.

    Nothing is decompressed before the lengths and the SHA-256 are verified (except, for a truncated file, a
    header inflated under the same cap, to name the tensor that is cut off), and the header never inflates past
    :data:`~slimkit.core.limits.MAX_HEADER_BYTES`.

    Raises:
        FormatError: naming ``source`` and the problem: bad magic, unsupported version, truncated file (and the
            tensor whose section is cut off), checksum mismatch, a header over the size cap or unreadable.
    """
    view = memoryview(data)
    if len(view) < _PREAMBLE.size:
        raise FormatError(f"{source}: truncated: {len(view)} bytes is too short for a .slim file")
    magic, version, flags, hlen = _PREAMBLE.unpack_from(view, 0)
    if magic != MAGIC:
        raise FormatError(f"{source}: bad magic {bytes(magic)!r}: not a .slim file")
    if version not in SUPPORTED_VERSIONS:
        raise FormatError(
            f"{source}: unsupported .slim format version {version} (this slimkit reads versions "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}); upgrade slimkit"
        )
    if flags & ~FLAG_ZLIB_HEADER:
        raise FormatError(f"{source}: unknown header flags {flags:#x}")
    pos = _PREAMBLE.size
    if pos + hlen + _U64.size > len(view):
        raise FormatError(f"{source}: truncated inside the header ({len(view)} bytes, header needs {pos + hlen})")
    stored_header = view[pos : pos + hlen]
    pos += hlen
    (plen,) = _U64.unpack_from(view, pos)
    pos += _U64.size
    end = pos + plen
    if end + DIGEST_BYTES > len(view):
        available = max(0, min(plen, len(view) - pos))
        try:
            header = _parse_header(stored_header, flags, source)
        except FormatError:
            header = None
        raise FormatError(
            f"{source}: truncated: {len(view)} bytes, expected {end + DIGEST_BYTES}"
            + _truncation_detail(header, available)
        )
    if end + DIGEST_BYTES < len(view):
        raise FormatError(f"{source}: {len(view) - end - DIGEST_BYTES} unexpected bytes after the checksum")
    if hashlib.sha256(view[:end]).digest() != bytes(view[end:]):
        raise FormatError(f"{source}: checksum mismatch: the file was altered or damaged")
    return _parse_header(stored_header, flags, source), view[pos:end]


def _parse_header(stored: memoryview, flags: int, source: str) -> dict[str, Any]:
    """Inflate (at most ``MAX_HEADER_BYTES``) and parse the JSON header."""
    if flags & FLAG_ZLIB_HEADER:
        inflate = zlib.decompressobj()
        try:  # in chunks, into one growing buffer: the peak stays near the cap, the bytes seen at most cap + chunk
            text = bytearray(inflate.decompress(stored, _INFLATE_CHUNK))
            while not inflate.eof and len(text) <= MAX_HEADER_BYTES:
                more = inflate.decompress(inflate.unconsumed_tail, _INFLATE_CHUNK)
                if not more and not inflate.unconsumed_tail:
                    break
                text += more
        except zlib.error as err:
            raise FormatError(f"{source}: unreadable header ({err})") from None
        if len(text) <= MAX_HEADER_BYTES and not inflate.eof:
            raise FormatError(f"{source}: unreadable header (incomplete zlib stream)")
    else:
        text = bytes(stored[: MAX_HEADER_BYTES + 1])
    if len(text) > MAX_HEADER_BYTES:
        raise FormatError(
            f"{source}: section 'header' inflates to more than {MAX_HEADER_BYTES} bytes (the cap on a JSON header); "
            "refusing to decompress it"
        )
    try:
        header = json.loads(text)
    except (ValueError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise FormatError(f"{source}: unreadable header ({reason})") from None
    if not isinstance(header, dict) or not isinstance(header.get("tensors"), list):
        raise FormatError(f"{source}: header lacks a tensor list")
    return header


def tensor_sizes(header: dict[str, Any], source: str) -> list[tuple[str, int]]:
    """Check every record's ``shape`` and ``dtype``; return ``(name, bytes)`` that decoding it would allocate.

    The bytes are the tensor's ``numel * itemsize`` plus, per integer stream, what its declared ``count`` decodes
    to (:func:`~slimkit.codec.streams.stream_decoded_bytes`). Computed from the header alone, so a loader can
    check them against :func:`~slimkit.core.limits.load_budget_bytes` before allocating anything.

    Raises:
        FormatError: a record that is not an object, a shape that is not a list of non-negative integers, an
            unknown dtype or invalid stream parameters, naming the tensor.
    """
    sizes = []
    for i, record in enumerate(header["tensors"]):
        if not isinstance(record, dict):
            raise FormatError(f"{source}: tensor record {i} is not an object")
        name = record.get("name", f"#{i}")
        shape, dtype = record.get("shape"), record.get("dtype")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise FormatError(f"{source}: tensor {name!r}: shape must be a list of non-negative integers, got {shape!r}")
        if dtype not in DTYPES:
            raise FormatError(f"{source}: tensor {name!r}: unknown dtype {dtype!r}")
        nbytes = math.prod(shape) * np.dtype(DTYPES[dtype][0]).itemsize
        for key in ("gaps", "indices"):
            if key in record:
                try:
                    nbytes += stream_decoded_bytes(record[key])
                except (ValueError, TypeError, AttributeError) as err:
                    raise FormatError(f"{source}: tensor {name!r}: {key}: {err}") from None
        sizes.append((str(name), nbytes))
    return sizes


def read_file(path: str | os.PathLike) -> tuple[dict[str, Any], memoryview]:
    path = Path(path)
    if not path.is_file():
        raise CodecError(f"{path}: no such .slim file")
    return unpack_file(path.read_bytes(), str(path))
