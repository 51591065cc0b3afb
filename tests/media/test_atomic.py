"""The one atomic writer (``lipsync.media.atomic``): renamed when complete, nothing left on failure."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lipsync.media.atomic import TEMP_MARKER, atomic_path, atomic_write_bytes, cleanup_stale_temp_files


def test_atomic_path_renames_on_success(tmp_path: Path) -> None:
    final = tmp_path / "new" / "report.json"
    with atomic_path(final) as temp:
        assert temp.parent == final.parent and temp.name.startswith(".report") and TEMP_MARKER in temp.name
        assert temp.suffix == ".json" and temp.exists() and not final.exists()
        temp.write_bytes(b"{}")
    assert final.read_bytes() == b"{}" and sorted(p.name for p in final.parent.iterdir()) == ["report.json"]


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "out.zip"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="half way"), atomic_path(final) as temp:
        temp.write_bytes(b"partial")
        raise RuntimeError("half way")
    assert final.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.zip"]


def test_atomic_write_bytes_and_a_folder_in_the_way(tmp_path: Path) -> None:
    assert atomic_write_bytes(tmp_path / "a.csv", b"x,y\n").read_bytes() == b"x,y\n"
    (tmp_path / "taken").mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write_bytes(tmp_path / "taken", b"")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "taken"]


def test_a_crash_leftover_is_cleaned_by_the_next_write(tmp_path: Path) -> None:
    leftover = tmp_path / f".old{TEMP_MARKER}999999999-deadbeef.json"  # no process holds its lock
    leftover.write_bytes(b"half")
    then = time.time() - 60
    os.utime(leftover, (then, then))
    atomic_write_bytes(tmp_path / "report.json", b"{}")
    assert not leftover.exists() and cleanup_stale_temp_files(tmp_path) == 0


def test_write_errors_name_the_cause() -> None:
    import errno

    from lipsync.media.atomic import write_error

    def said(code: int) -> str:
        return str(write_error(Path("/x/out.mp4"), "writing", OSError(code, os.strerror(code))))

    assert said(errno.ENOSPC).startswith("The disk is full")
    assert said(errno.EROFS).startswith("Permission denied")
    assert "folder does not exist or cannot hold files" in said(errno.ENOENT)
    assert "folder does not exist or cannot hold files" in said(errno.ENOTDIR)
    assert said(errno.EIO).endswith("check the output folder.") and "disk space" not in said(errno.EIO)
