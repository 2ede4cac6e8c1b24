"""atomic_write: files get the permissions the umask allows (not mkstemp's 0600), and a failed write leaves nothing."""

import os
import stat
import sys

import pytest

from slimkit.core import io
from slimkit.core.io import atomic_write, atomic_write_bytes, atomic_write_json

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


@pytest.fixture
def umask():
    """``umask(mask)`` sets the process umask for the test; the old one comes back afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_file_follows_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_write_bytes(tmp_path / "a.bin", b"hello")
    atomic_write_json(tmp_path / "sub" / "b.json", {"x": 1})
    assert _mode(tmp_path / "a.bin") == expected
    assert _mode(tmp_path / "sub" / "b.json") == expected
    assert (tmp_path / "a.bin").read_bytes() == b"hello"


def test_overwrite_replaces_content_and_mode(tmp_path, umask):
    umask(0o077)
    atomic_write_bytes(tmp_path / "a.bin", b"old")
    umask(0o022)
    atomic_write_bytes(tmp_path / "a.bin", b"new")
    assert (tmp_path / "a.bin").read_bytes() == b"new" and _mode(tmp_path / "a.bin") == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_umask_read_without_proc_matches_and_is_left_unchanged(tmp_path, umask, monkeypatch):
    umask(0o027)
    assert io._current_umask() == 0o027

    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(io, "open", no_proc, raising=False)  # shadows the builtin inside slimkit.core.io only
    assert io._current_umask() == 0o027
    assert os.umask(0o027) == 0o027  # the fallback put the mask back
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    assert _mode(tmp_path / "a.bin") == 0o640


def test_failed_write_leaves_no_file_and_no_temp_file(tmp_path):
    def write(f):
        f.write(b"half a fi")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(tmp_path / "a.bin", write)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path, umask):
    umask(0o022)
    atomic_write_bytes(tmp_path / "a.bin", b"complete")

    def write(f):
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "a.bin", write)
    assert (tmp_path / "a.bin").read_bytes() == b"complete" and _mode(tmp_path / "a.bin") == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
