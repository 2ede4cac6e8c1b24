"""Load limits: the most memory reading a file may claim, checked before anything is allocated.

A file declares sizes (a header length, tensor shapes, stream symbol counts) that a reader would otherwise trust
and allocate. An attacker can make a few kilobytes claim terabytes, so every loader compares what a file claims
with a budget that grows with the file's own size, and refuses with a :class:`~slimkit.core.errors.FormatError`
before decoding:

* ``MAX_HEADER_BYTES``: a (decompressed) JSON header is at most 64 MiB.
* :func:`load_budget_bytes`: the tensors of a file of ``n`` bytes may decode to
  ``max(256 MiB, 4096 * n)`` bytes, and never more than 64 GiB. Real files stay far below the ratio
  (Deep Compression reaches 35-50x; only a tensor pruned entirely comes near 4096x); the floor covers
  small files.

Environment:
    ``SLIMKIT_MAX_LOAD_BYTES``: an integer number of bytes. When set, every file may decode to exactly this
    many bytes whatever its size: it replaces both the floor and the absolute maximum (set it above 64 GiB to
    load a huge model you trust, or lower to bound what untrusted files may take).

Example:
    >>> budget = load_budget_bytes(path.stat().st_size)
    >>> check_budget(str(path), "tensor 'fc.weight'", numel * itemsize, budget)
"""

from __future__ import annotations

import os

from slimkit.core.errors import ConfigError, FormatError

MAX_HEADER_BYTES = 64 << 20
LOAD_FLOOR_BYTES = 256 << 20
LOAD_MAX_BYTES = 64 << 30
LOAD_RATIO = 4096  # decoded bytes allowed per byte of file
ENV_VAR = "SLIMKIT_MAX_LOAD_BYTES"


def _env_limit() -> int | None:
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return None
    try:
        limit = int(value)
    except ValueError:
        limit = -1
    if limit < 0:
        raise ConfigError(f"{ENV_VAR} must be a non-negative integer number of bytes, got {value!r}")
    return limit


def load_budget_bytes(file_bytes: int) -> int:
    """Bytes of tensors a file of ``file_bytes`` bytes may decode to (see the module docstring).

    Raises:
        ConfigError: ``SLIMKIT_MAX_LOAD_BYTES`` is set but not a non-negative integer.
    """
    override = _env_limit()
    if override is not None:
        return override
    return min(max(LOAD_FLOOR_BYTES, LOAD_RATIO * max(0, file_bytes)), LOAD_MAX_BYTES)


def _human(nbytes: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return f"{nbytes / (1 << shift):.1f} {unit}"
    return f"{nbytes} B"


def check_budget(source: str, what: str, nbytes: int, budget: int) -> None:
    """Refuse to decode ``nbytes`` for ``what`` (a section or tensor) of ``source`` when over ``budget``.

    Raises:
        FormatError: naming the file, ``what``, the claimed size, the limit, and how to raise it.
    """
    if nbytes > budget:
        raise FormatError(
            f"{source}: {what} claims {nbytes} bytes ({_human(nbytes)}), over the load limit of {budget} bytes "
            f"({_human(budget)}) for a file of this size; if you trust the file, set {ENV_VAR}={nbytes}"
        )


ARCH_FLOOR_BYTES = 1 << 30
ARCH_RATIO = 64  # an architecture may be 64x the weights its file holds (a model pruned to 1/64 of its size)


def architecture_budget_bytes(declared_bytes: int) -> int:
    """Bytes of parameters and buffers the architecture a file names may take when rebuilt: at least 1 GiB,
    up to ``ARCH_RATIO`` times the tensors the file declares, at most 64 GiB (``SLIMKIT_MAX_LOAD_BYTES``
    replaces the whole rule, as for :func:`load_budget_bytes`)."""
    override = _env_limit()
    if override is not None:
        return override
    return min(max(ARCH_FLOOR_BYTES, ARCH_RATIO * max(0, declared_bytes)), LOAD_MAX_BYTES)
