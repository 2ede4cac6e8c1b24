"""Atomic file writes: a crash mid-write never leaves a half-written file under the final name."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_UMASK_LOCK = threading.Lock()


def _current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # elsewhere the only way to read it is to set it: probe with the strictest usual mask so that a file another
    # thread creates in between is never more open than intended; the lock keeps our own writers from racing
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync, then rename over ``path``.

    The file gets the permissions a plain ``open(path, "w")`` would give (``0o666`` less the umask), not the
    owner-only ``0o600`` of :func:`tempfile.mkstemp`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.chmod(tmp, 0o666 & ~_current_umask())  # by path: os.fchmod is POSIX-only before 3.13
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    return atomic_write_bytes(path, text.encode())


def read_legacy_payload(path: str | os.PathLike, fmt: str, what: str) -> dict[str, Any]:
    """The payload of a slimkit 0.1 file: a ``torch.save`` zip of tensors and plain values whose ``format`` entry
    is ``fmt``, loaded with ``weights_only`` (nothing but tensors and plain values is unpickled).

    Args:
        what: what the file should be, for the message (``"model file"``, ``"training checkpoint"``).

    Raises:
        CheckpointError: naming ``path`` when the file is unreadable or of another format.
    """
    import torch

    from slimkit.core.errors import CheckpointError

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files
        raise CheckpointError(f"{path}: not a readable slimkit {what} ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise CheckpointError(f"{path}: not a slimkit {what} (expected format {fmt})")
    return payload

