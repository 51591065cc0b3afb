"""Where the CPU runtime keeps what it made from a checkpoint, and how it names it (torch-free).

The converted (OpenVINO IR ``.xml`` + ``.bin``) and int8-calibrated models of a checkpoint are
cached in ``CACHE_FOLDER`` beside the weights, else in this library's folder of the user cache
(``user_cache_dir() / "openvino"``), named by the weights' sha256 and the runtime's versions,
written atomically (``lipsync.media.atomic``); a copy in either place is used (``IrCache``). The
sha256 itself is remembered in the user cache by the file's absolute path, size and modification
time (``weights_sha256``), so a start does not read the whole checkpoint again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from ...media.atomic import atomic_path

__all__ = ["CACHE_FOLDER", "IrCache", "user_cache_dir", "weights_sha256"]

CACHE_FOLDER = ".resync-cache"
"""The folder beside the weights that holds the converted models."""


def user_cache_dir() -> Path:
    """This library's folder in the user's cache (``$XDG_CACHE_HOME``, ``%LOCALAPPDATA%``, ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA") or str(Path.home() / ".cache")
    return Path(base) / "resync-lipsync"


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _digest_record(path: Path) -> Path:
    """Where the digest of ``path`` (absolute) is remembered: one small JSON file per weights file."""
    key = hashlib.sha256(os.fsencode(path)).hexdigest()[:32]
    return user_cache_dir() / "sha256" / f"{key}.json"


def weights_sha256(path: str | os.PathLike[str], remember: bool = True) -> str:
    """The sha256 of a file (hex).

    Hashing reads the whole file (a published Wav2Lip checkpoint is 416 MB: ~0.5 s of a start
    here, more from a cold disk), so with ``remember`` the digest is kept in the user cache
    folder (``sha256/``, written atomically) under the file's absolute path, size and
    modification time (ns), and read back while all three match: a replaced or touched file
    is hashed again. Where that folder cannot be written, the file is hashed every time."""
    file = Path(path).absolute()
    if not remember:
        return _hash_file(file)
    stat = file.stat()
    key = {"path": os.fsdecode(file), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    record = _digest_record(file)
    try:
        known = json.loads(record.read_text(encoding="utf-8"))
        if isinstance(known, dict) and all(known.get(k) == v for k, v in key.items()):
            sha = known.get("sha256")
            if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha):
                return sha
    except (OSError, ValueError):
        pass
    sha = _hash_file(file)
    if file.stat().st_mtime_ns == stat.st_mtime_ns:  # not changed while it was read
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(record) as temp:
                temp.write_text(json.dumps({**key, "sha256": sha}), encoding="utf-8")
        except OSError:
            pass  # a read-only cache: hashed again next time
    return sha


def _save_ir(model: Any, xml: Path) -> Path:
    """Write ``model`` as ``xml`` + its ``.bin``, atomically: the ``.bin`` lands first, so an
    ``.xml`` under the final name always has its complete weights."""
    import openvino as ov  # only a network that OpenVINO made is saved

    xml.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(xml) as temp_xml:
        temp_bin = temp_xml.with_suffix(".bin")
        try:
            ov.save_model(model, str(temp_xml), compress_to_fp16=False)
            os.replace(temp_bin, xml.with_suffix(".bin"))
        finally:
            temp_bin.unlink(missing_ok=True)
    return xml


def _marked_read_only(folder: Path) -> bool:
    """Whether ``folder`` exists without any write permission bit (a shared, read-only folder)."""
    try:
        return not (folder.stat().st_mode & 0o222)
    except OSError:
        return False


class IrCache:
    """Where the IR files of one checkpoint live: ``<weights dir>/.resync-cache``, else the user's cache."""

    def __init__(self, weights: Path, sha256: str, versions: str) -> None:
        self.stem = f"{weights.stem}.{sha256[:16]}.{versions}"
        self.folders = [weights.parent / CACHE_FOLDER, user_cache_dir() / "openvino"]

    def find(self, kind: str) -> Path | None:
        for folder in self.folders:
            xml = folder / f"{self.stem}.{kind}.xml"
            if xml.is_file() and xml.with_suffix(".bin").is_file():
                return xml
        return None

    def store(self, model: Any, kind: str) -> Path | None:
        """Save ``model``; None when no folder is writable (it then lives in memory only). A
        folder marked read-only is left alone even where the user could write it (root)."""
        for folder in self.folders:
            if _marked_read_only(folder.parent):
                continue
            try:
                return _save_ir(model, folder / f"{self.stem}.{kind}.xml")
            except OSError:
                continue
        return None
