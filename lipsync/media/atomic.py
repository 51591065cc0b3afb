"""The one way this library writes a file: to a hidden temporary file beside it, renamed over the
final name only when complete.

A crash, an exception or a cancelled job never leaves a half-written file under the name the
user asked for (the next run would trust it). The temporary file sits in the same folder (so
``os.replace`` is an atomic rename on one filesystem), is named
``.<stem>.lipsync-tmp-<pid>-<random><suffix>`` (the suffix kept so tools that sniff the
extension still recognise it) and is locked while it is written; ``cleanup_stale_temp_files``
removes what crashed runs left behind and never touches a file another writer still holds.

- ``atomic_path(final)``: a context manager yielding the temporary path to write to; renamed on
  success, removed on any exception.
- ``atomic_write_bytes(path, data)``: bytes written, flushed to disk (fsync) and renamed.
- ``reserve_temp`` / ``commit`` / ``discard``: the same steps for a writer that holds its
  temporary file across many calls (``VideoWriter``).

Failures surface as ``OSError`` (``IsADirectoryError`` when a folder has the final name): each
caller turns them into its own sentence (``write_error`` is the one for outputs).
"""

from __future__ import annotations

import errno
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ..errors import OutputError

__all__ = [
    "TEMP_MARKER",
    "atomic_path",
    "atomic_write_bytes",
    "cleanup_stale_temp_files",
    "commit",
    "discard",
    "reserve_temp",
    "temp_name",
    "write_error",
]

TEMP_MARKER = ".lipsync-tmp-"
_ORPHAN_GRACE_S = 5.0
_NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems


def _try_lock(handle: IO[bytes]) -> bool | None:
    """Take the exclusive advisory lock of an open file: True taken, False held elsewhere, None
    when locks are not available (Windows, some network file systems)."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def _orphaned(path: str, name: str) -> bool | None:
    """True when no writer holds the temporary file's lock (the process that made it is gone),
    False when one does, None when it cannot be told (no locks here, or the file is this
    process's: where locks are emulated per process, as on NFS, taking it would succeed)."""
    if name.split(TEMP_MARKER, 1)[1].startswith(f"{os.getpid()}-"):
        return None
    try:
        with open(path, "rb") as handle:
            return _try_lock(handle)
    except OSError:
        return None


def cleanup_stale_temp_files(directory: str | os.PathLike[str], older_than_s: float = 3600) -> int:
    """Delete ``.*.lipsync-tmp-*`` files left in ``directory`` by crashed runs; return how many.

    A writer holds a lock on its temporary file until it is done, and the system drops the lock
    when the process dies, however it dies: an unlocked temporary file is a crash's leftover,
    a locked one is a write in progress (in any process) and is never touched. Where this
    cannot be told (no file locks), files untouched for ``older_than_s`` go. Files younger
    than a few seconds are always left alone (a writer that is just starting). Every
    ``atomic_path`` and ``VideoWriter`` calls this on its output folder.
    """
    now = time.time()
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        if not (entry.name.startswith(".") and TEMP_MARKER in entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat().st_mtime
            if age <= _ORPHAN_GRACE_S:
                continue
            orphaned = _orphaned(entry.path, entry.name)
            if orphaned or (orphaned is None and age > older_than_s):
                os.remove(entry.path)
                removed += 1
        except OSError:
            continue  # another process removed it first, or it is not ours to delete
    return removed


def write_error(path: Path, action: str, exc: BaseException) -> OutputError:
    """One sentence for a failed write, telling a full disk apart from the other causes."""
    if getattr(exc, "errno", None) == errno.ENOSPC:
        return OutputError(f"The disk is full while {action} {path}; free some space or write to another folder.")
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"Permission denied while {action} {path}; choose a folder you can write to.")
    if getattr(exc, "errno", None) in (errno.ENOENT, errno.ENOTDIR):
        return OutputError(f"Cannot write {path}: its folder does not exist or cannot hold files ({exc}); "
                           "choose an ordinary folder for the output.")
    return OutputError(f"Failed while {action} {path} ({exc}); check the output folder.")


def temp_name(final: Path) -> str:
    """``.<stem>.lipsync-tmp-<pid>-<random><suffix>``, the stem shortened so the name stays
    within the 255-byte limit when the final name is already close to it."""
    tail = f"{TEMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}{final.suffix}"
    stem = final.stem
    while len(os.fsencode(f".{stem}{tail}")) > _NAME_MAX and len(stem) > 1:
        stem = stem[:-1]
    return f".{stem}{tail}"


def reserve_temp(final: str | os.PathLike[str]) -> tuple[Path, IO[bytes]]:
    """Create ``final``'s folder and an exclusive, locked, empty temporary file beside it.

    Returns the temporary path and the open handle that holds the lock (which tells
    ``cleanup_stale_temp_files`` the file is in use): write to the path (opening it again
    truncates the same file, so the lock still covers it), then ``commit`` or ``discard``.
    Raises OSError; IsADirectoryError when ``final`` is a folder.
    """
    target = Path(final)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "a folder has that name", str(target))
    temp = target.parent / temp_name(target)
    handle = open(temp, "xb")  # noqa: SIM115 - held open until commit or discard
    _try_lock(handle)
    return temp, handle


def commit(temp: Path, final: str | os.PathLike[str], lock: IO[bytes]) -> None:
    """Rename the complete ``temp`` over ``final`` (atomic) and release its lock. Raises OSError
    (the temporary file is then still there: ``discard`` it)."""
    os.replace(temp, final)
    lock.close()


def discard(temp: Path, lock: IO[bytes]) -> None:
    """Remove ``temp`` and release its lock; never raises."""
    try:
        os.remove(temp)
    except OSError:
        pass  # already gone, or undeletable: cleanup_stale_temp_files catches it later
    lock.close()


@contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it over ``final`` when the block ends
    normally, remove it when the block raises (``final`` is then left as it was).

    Crash leftovers in the folder are cleaned first. Raises OSError when the folder or the
    temporary file cannot be made, or the rename fails (IsADirectoryError: a folder has the name).
    """
    temp, lock = reserve_temp(final)
    try:
        cleanup_stale_temp_files(temp.parent)
        yield temp
        commit(temp, final, lock)
    except BaseException:
        discard(temp, lock)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, flushed to the disk (fsync) before the rename.
    Returns ``path`` as a Path; raises OSError (the old file, if any, is then untouched)."""
    target = Path(path)
    with atomic_path(target) as temp:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return target
