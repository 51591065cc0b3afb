"""Building a batch's items: what a user types (a folder, a glob, one path per line, a CSV/JSON
manifest) becomes ``BatchItem`` jobs, with every path kept inside the allowed folders.

- ``items_for_videos`` (one audio × videos: outputs named after the videos), ``items_for_audios``
  (one video × audios: named after the audios) or ``read_manifest`` (a CSV/JSON list of video,
  audio and optional output name). ``expand_sources`` turns what a user types into files.
- Paths: ``resolve_inside`` keeps every user-given path inside the allowed folders (no ``..``,
  no absolute path elsewhere, no symbolic link leading out).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from ...errors import InputError
from ...media.formats import AUDIO_SUFFIXES, OUTPUT_SUFFIXES
from ...media.formats import FOLDER_VIDEO_SUFFIXES as VIDEO_SUFFIXES
from ...types import Waveform

__all__ = [
    "AUDIO_SUFFIXES",
    "OUTPUT_SUFFIXES",
    "VIDEO_SUFFIXES",
    "BatchItem",
    "Roots",
    "expand_sources",
    "items_for_audios",
    "items_for_videos",
    "output_name",
    "read_manifest",
    "resolve_inside",
]

_GLOB_CHARS = frozenset("*?[")
Roots = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]
"""One allowed folder, or several (relative paths are taken from the first)."""


# --- paths


def _roots(roots: Roots) -> list[Path]:
    listed = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    if not listed:
        raise ValueError("at least one allowed folder is needed")
    return [Path(r).resolve() for r in listed]


def resolve_inside(roots: Roots, user_path: str | os.PathLike[str]) -> Path:
    """``user_path`` resolved inside an allowed folder, or an InputError.

    ``roots`` is one folder or several: a relative path is taken from the first, an absolute one
    must lie in any of them. The check is made on the resolved path, so ``..`` and symbolic
    links that lead out are refused as well as plain absolute paths elsewhere.
    """
    allowed = _roots(roots)
    text = os.fspath(user_path).strip()
    if not text or "\0" in text:
        raise InputError(f"The path {text!r} is empty or contains a NUL character; give a file or folder name.")
    given = Path(text)
    full = (given if given.is_absolute() else allowed[0] / given).resolve()
    if any(full == root or root in full.parents for root in allowed):
        return full
    raise _outside(text, allowed)


def _outside(text: str, allowed: list[Path]) -> InputError:
    where = " or ".join(str(r) for r in allowed)
    return InputError(
        f"The path {text!r} leads outside {where}, which is not allowed: give a path inside that folder "
        "(no '..', no absolute path elsewhere, no link that points out of it), or name the folder that holds "
        "every input with --root."
    )


def _natural_key(path: Path) -> list[Any]:
    """lecture_2 before lecture_10."""
    return [int(p) if p.isdigit() else p.casefold() for p in re.split(r"(\d+)", path.name)]


def _glob_inside(allowed: list[Path], pattern: str) -> list[Path]:
    given = Path(pattern)
    if ".." in given.parts:
        raise InputError(f"The pattern {pattern!r} contains '..'; give a pattern inside {allowed[0]}.")
    base = allowed[0]
    if given.is_absolute():
        inside = next((r for r in allowed if given.is_relative_to(r)), None)
        if inside is None:
            raise _outside(pattern, allowed)
        base, given = inside, given.relative_to(inside)
    found = [p for p in base.glob(str(given)) if p.is_file()]
    return [resolve_inside(allowed, p) for p in sorted(found, key=lambda p: (p.parent.as_posix(), _natural_key(p)))]


def expand_sources(
    spec: str | Sequence[str | os.PathLike[str]], roots: Roots, suffixes: frozenset[str], what: str = "video"
) -> list[Path]:
    """The files named by ``spec``: one entry per line (or list item), each a file, a folder (its
    ``suffixes`` files, not recursive, in natural order) or a glob (``lectures/*.mp4``,
    ``**/*.wav``). Empty lines and lines starting with ``#`` are ignored. Every path is checked
    with ``resolve_inside``. A listed file that does not exist is kept (its item fails with the
    reason); an empty folder or a glob without matches is an InputError."""
    allowed = _roots(roots)
    entries = spec.splitlines() if isinstance(spec, str) else [os.fspath(s) for s in spec]
    files: list[Path] = []
    for raw in entries:
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        if _GLOB_CHARS & set(entry):
            found = [p for p in _glob_inside(allowed, entry) if not p.name.startswith(".")]
            if not found:
                raise InputError(f"No {what} file matches {entry!r} in {allowed[0]}; check the pattern.")
        else:
            path = resolve_inside(allowed, entry)
            if path.is_dir():
                found = sorted(
                    (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes and p.name[0] != "."),
                    key=_natural_key,
                )
                if not found:
                    kinds = ", ".join(sorted(suffixes))
                    raise InputError(f"The folder {entry!r} holds no {what} files ({kinds}); check the folder.")
            else:
                found = [path]
        files += [p for p in found if p not in files]
    if not files:
        raise InputError(f"No {what} was given: name a file, a folder or a pattern (one per line).")
    return files


# --- items


@dataclass(frozen=True)
class BatchItem:
    """One job of a batch: ``video`` and ``audio`` (a path, or a Waveform shared by the items)
    make ``output_name`` (a plain file name) in the batch folder. ``label`` is what progress
    messages show ("item 3/10: lecture_03.mp4"); by default the video's file name."""

    video: str
    audio: str | Waveform
    output_name: str
    label: str = ""

    @property
    def video_name(self) -> str:
        return Path(self.video).name

    @property
    def audio_name(self) -> str:
        return self.audio.source if isinstance(self.audio, Waveform) else Path(self.audio).name

    @property
    def title(self) -> str:
        return self.label or self.video_name


def output_name(stem: str, suffix: str = ".mp4") -> str:
    """A safe file name for an output: no folders, no control or reserved characters."""
    safe = re.sub(r'[\x00-\x1f\x7f<>:"/\\|?*]+', "_", stem).strip(" ._") or "output"
    return safe[:150] + suffix


def _unique_names(names: list[str]) -> list[str]:
    """Add _2, _3 … to names that repeat (case-insensitively: not every file system tells)."""
    seen: set[str] = set()
    out = []
    for name in names:
        stem, suffix = os.path.splitext(name)
        candidate, n = name, 1
        while candidate.casefold() in seen:
            n += 1
            candidate = f"{stem}_{n}{suffix}"
        seen.add(candidate.casefold())
        out.append(candidate)
    return out


def items_for_videos(videos: Sequence[str | os.PathLike[str]], audio: str | os.PathLike[str] | Waveform,
                     suffix: str = ".mp4") -> list[BatchItem]:
    """One voice on many videos; each output is named after its video."""
    voice = audio if isinstance(audio, Waveform) else os.fspath(audio)
    names = _unique_names([output_name(Path(v).stem, suffix) for v in videos])
    return [BatchItem(os.fspath(v), voice, n, Path(v).name) for v, n in zip(videos, names)]


def items_for_audios(video: str | os.PathLike[str], audios: Sequence[str | os.PathLike[str]],
                     suffix: str = ".mp4") -> list[BatchItem]:
    """One video with many voices (languages); each output is named after its audio."""
    names = _unique_names([output_name(Path(a).stem, suffix) for a in audios])
    return [BatchItem(os.fspath(video), os.fspath(a), n, Path(a).name) for a, n in zip(audios, names)]


def _manifest_rows(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"Cannot read the manifest {path} ({exc.strerror}); check the path.") from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"The manifest {path.name} is not valid JSON ({exc}); fix it or use CSV.") from exc
        rows = data.get("items") if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise InputError(f"The manifest {path.name} must be a list of objects with video, audio, output "
                             "(or an object whose 'items' is that list).")
        return rows
    if path.suffix.lower() != ".csv":
        raise InputError(f"The manifest {path.name} must be a .csv or .json file.")
    reader = csv.DictReader(io.StringIO(text))
    header = {(h or "").strip().lower() for h in reader.fieldnames or []}
    if not {"video", "audio"} <= header:
        raise InputError(f"The manifest {path.name} needs a header line with the columns video,audio[,output]; "
                         f"it has {sorted(header)}.")
    return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]


def _manifest_output(wanted: str, video: Path, suffix: str) -> str:
    """The row's output name made safe ("en/intro.mp4" becomes "en_intro.mp4"); default: the video's."""
    if not wanted:
        return output_name(video.stem, suffix)
    stem, ext = os.path.splitext(wanted)
    if ext.lower() in OUTPUT_SUFFIXES:
        return output_name(stem, ext.lower())
    return output_name(wanted, suffix)


def read_manifest(path: str | os.PathLike[str], roots: Roots | None = None, suffix: str = ".mp4") -> list[BatchItem]:
    """Explicit pairs from a CSV (header ``video,audio,output``) or JSON manifest; ``output`` is
    optional (default: the video's name). Paths are relative to the manifest's folder and must
    stay inside ``roots`` (default: that folder)."""
    manifest = Path(path)
    allowed = _roots(roots if roots is not None else manifest.resolve().parent)
    folder = manifest.resolve().parent
    items, names = [], []
    for number, row in enumerate(_manifest_rows(manifest), 1):
        video, audio = str(row.get("video") or "").strip(), str(row.get("audio") or "").strip()
        if not video or not audio:
            raise InputError(f"Row {number} of the manifest {manifest.name} lacks a video or an audio; fill both.")
        video_path = resolve_inside(allowed, folder / video if not Path(video).is_absolute() else video)
        audio_path = resolve_inside(allowed, folder / audio if not Path(audio).is_absolute() else audio)
        names.append(_manifest_output(str(row.get("output") or "").strip(), video_path, suffix))
        items.append((str(video_path), str(audio_path)))
    if not items:
        raise InputError(f"The manifest {manifest.name} lists no items.")
    return [BatchItem(v, a, n, Path(v).name) for (v, a), n in zip(items, _unique_names(names))]
