"""Output paths are checked before any work: a command never trains for an hour and then cannot save."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from slimkit.core.errors import ConfigError


def ensure_writable(path: str | os.PathLike, *, flag: str = "--out", folder: bool = False) -> Path:
    """Check that ``path`` (a file, or a folder with ``folder=True``) can be written; create nothing.

    Missing folders on the way are fine (the writers create them) when the nearest existing one takes new files;
    that is tried by creating and removing a temporary file there, so permissions, read-only mounts and a full
    inode table all count.

    Raises:
        ConfigError: naming ``flag`` and the path: a folder where a file goes (or a file where a folder goes), a
            file in the way of a folder on the path, or no permission to create files.
    """
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: exists and is not a folder")
    if not folder and path.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; give a file name")
    existing = path if folder else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ConfigError(f"{flag} {path}: cannot write in {existing} ({err.strerror or err})") from None
    return path
