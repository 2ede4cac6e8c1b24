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

Nothing is ever unpickled; a reader needs only ``json``, ``zlib`` and ``hashlib``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

from slimkit.core.errors import CodecError
from slimkit.core.io import atomic_write

MAGIC = b"\x89SLIM\r\n\x1a"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
FLAG_ZLIB_HEADER = 1
_PREAMBLE = struct.Struct("<8sIIQ")  # magic, version, flags, hlen
_U64 = struct.Struct("<Q")
DIGEST_BYTES = 32


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
    """Name the first tensor section that the truncated payload no longer holds."""
    for record in (header or {}).get("tensors", []):
        for section, (offset, length) in record.get("sections", {}).items():
            if offset + length > available:
                return (
                    f"; truncated section {section!r} of tensor {record.get('name')!r} "
                    f"(needs payload bytes {offset}..{offset + length}, only {available} present)"
                )
    return ""


def unpack_file(data: bytes | memoryview, source: str = "<bytes>") -> tuple[dict[str, Any], memoryview]:
    """Check framing, version and checksum; return ``(header, payload)``.

    Raises:
        CodecError: naming ``source`` and the problem: bad magic, unsupported version, truncated file (and the
            tensor whose section is cut off), checksum mismatch, unreadable header.
    """
    view = memoryview(data)
    if len(view) < _PREAMBLE.size:
        raise CodecError(f"{source}: truncated: {len(view)} bytes is too short for a .slim file")
    magic, version, flags, hlen = _PREAMBLE.unpack_from(view, 0)
    if magic != MAGIC:
        raise CodecError(f"{source}: bad magic {bytes(magic)!r}: not a .slim file")
    if version not in SUPPORTED_VERSIONS:
        raise CodecError(
            f"{source}: unsupported .slim format version {version} (this slimkit reads versions "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}); upgrade slimkit"
        )
    if flags & ~FLAG_ZLIB_HEADER:
        raise CodecError(f"{source}: unknown header flags {flags:#x}")
    pos = _PREAMBLE.size
    if pos + hlen + _U64.size > len(view):
        raise CodecError(f"{source}: truncated inside the header ({len(view)} bytes, header needs {pos + hlen})")
    header = _parse_header(bytes(view[pos : pos + hlen]), flags, source, strict=False)
    pos += hlen
    (plen,) = _U64.unpack_from(view, pos)
    pos += _U64.size
    end = pos + plen
    if end + DIGEST_BYTES > len(view):
        available = max(0, min(plen, len(view) - pos))
        raise CodecError(
            f"{source}: truncated: {len(view)} bytes, expected {end + DIGEST_BYTES}"
            + _truncation_detail(header, available)
        )
    if end + DIGEST_BYTES < len(view):
        raise CodecError(f"{source}: {len(view) - end - DIGEST_BYTES} unexpected bytes after the checksum")
    if hashlib.sha256(view[:end]).digest() != bytes(view[end:]):
        raise CodecError(f"{source}: checksum mismatch: the file was altered or damaged")
    if header is None:
        header = _parse_header(bytes(view[_PREAMBLE.size : _PREAMBLE.size + hlen]), flags, source, strict=True)
    return header, view[pos:end]


def _parse_header(raw: bytes, flags: int, source: str, *, strict: bool) -> dict[str, Any] | None:
    try:
        text = zlib.decompress(raw) if flags & FLAG_ZLIB_HEADER else raw
        header = json.loads(text)
    except (zlib.error, ValueError) as err:
        if strict:
            raise CodecError(f"{source}: unreadable header ({err})") from None
        return None
    if not isinstance(header, dict) or not isinstance(header.get("tensors"), list):
        if strict:
            raise CodecError(f"{source}: header lacks a tensor list")
        return None
    return header


def read_file(path: str | os.PathLike) -> tuple[dict[str, Any], memoryview]:
    path = Path(path)
    if not path.is_file():
        raise CodecError(f"{path}: no such .slim file")
    return unpack_file(path.read_bytes(), str(path))
