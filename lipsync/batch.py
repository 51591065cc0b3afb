"""Batch production: one voice × many videos, many voices × one video, or explicit pairs.

    items ─► for each item: done before? skip ─► lipsync_video (same settings, one model) ─► release
          └► report.json + report.csv (atomic) ─► <folder>.zip of the outputs and reports (atomic)

- Items come from ``items_for_videos`` (one audio × videos: outputs named after the videos),
  ``items_for_audios`` (one video × audios: named after the audios) or ``read_manifest`` (a
  CSV/JSON list of video, audio and optional output name). ``expand_sources`` turns what a user
  types (a folder, a glob, or one path per line) into files.
- Isolation: an item that fails (a missing or corrupt file, no face in any frame, a codec
  error) is recorded with its reason and the batch goes on. Stopping is different: ``Cancelled``,
  Ctrl-C, and any exception raised by the caller's own callbacks (the host's interrupt comes
  through ``should_stop`` or ``progress``) stop the batch; the report is still written.
- Resumable: an output under its final name is complete (the writer renames only finished
  files, and a batch moves an output to its final name only once it is accepted). A re-run
  skips it, unless the previous report says it was made from other inputs or settings, or it
  no longer probes with the frame count the report recorded.
- Paths: ``resolve_inside`` keeps every user-given path inside the allowed folders (no ``..``,
  no absolute path elsewhere, no symbolic link leading out); zip members are plain file names.

The CLI is ``python -m lipsync batch`` (``run_batch_cli``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import hashlib
import io
import json
import math
import os
import re
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, Union

from .errors import Cancelled, FaceNotFoundError, InputError, LipSyncError, OutputError
from .types import Waveform

if TYPE_CHECKING:
    from .faces import FaceDetector
    from .inference import Generator
    from .pipeline import LipSyncOptions, PreparedAudio

__all__ = [
    "AUDIO_SUFFIXES",
    "CSV_COLUMNS",
    "OUTPUT_SUFFIXES",
    "REPORT_CSV",
    "REPORT_JSON",
    "STATUSES",
    "VIDEO_SUFFIXES",
    "BatchItem",
    "BatchReport",
    "ItemResult",
    "ItemStatus",
    "batch_key",
    "expand_sources",
    "item_key",
    "items_for_audios",
    "items_for_videos",
    "output_name",
    "read_manifest",
    "resolve_inside",
    "run_batch",
    "run_batch_cli",
    "voice_digests",
    "write_zip",
]

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"})
"""What a folder contributes as videos (still images count only when listed or globbed)."""
AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".opus", ".wma", ".aif", ".aiff"})
"""What a folder contributes as audios."""
OUTPUT_SUFFIXES = (".mp4", ".mkv", ".mov", ".m4v")
REPORT_JSON, REPORT_CSV = "report.json", "report.csv"
CSV_COLUMNS = ("item", "video", "audio", "status", "error", "output", "duration", "seconds", "frames")
_STAGED = ".resync-staged"
_GLOB_CHARS = frozenset("*?[")

ItemStatus = Literal["done", "skipped", "failed", "cancelled", "pending"]
STATUSES: tuple[ItemStatus, ...] = ("done", "skipped", "failed", "cancelled", "pending")
Roots = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]
"""One allowed folder, or several (relative paths are taken from the first)."""
T = TypeVar("T")
P = ParamSpec("P")


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
        "(no '..', no absolute path elsewhere, no link that points out of it)."
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


# --- results


@dataclass
class ItemResult:
    """One line of the report. ``output`` is a file name in the batch folder ("" when none);
    ``duration`` the output's length in seconds; ``seconds`` the time this item took."""

    item: int
    video: str
    audio: str
    status: ItemStatus = "pending"
    error: str = ""
    output: str = ""
    duration: float | None = None
    seconds: float = 0.0
    frames: int = 0
    key: str = ""


@dataclass
class BatchReport:
    out_dir: Path
    items: list[ItemResult]
    report_json: Path
    report_csv: Path
    zip_path: Path | None = None
    seconds: float = 0.0

    def count(self, status: ItemStatus) -> int:
        return sum(1 for r in self.items if r.status == status)

    @property
    def outputs(self) -> list[Path]:
        """The finished outputs (made now or found complete), in item order."""
        return [self.out_dir / r.output for r in self.items if r.status in ("done", "skipped")]

    def summary(self) -> str:
        text = f"{self.count('done')} done, {self.count('skipped')} skipped, {self.count('failed')} failed"
        failed = [f"{r.video} + {r.audio}: {r.error}" for r in self.items if r.status == "failed"]
        return text + (" — " + "; ".join(failed) if failed else "")


def _atomic_write(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        raise OutputError(f"Cannot write {path} ({exc.strerror or exc}); check the folder and the free space.") from exc
    finally:
        temp.unlink(missing_ok=True)  # gone already when the rename succeeded


def _write_reports(out_dir: Path, results: list[ItemResult], seconds: float) -> tuple[Path, Path]:
    summary = {s: sum(1 for r in results if r.status == s) for s in STATUSES}
    payload = {
        "format": "resync-batch-report", "version": 1,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 3), "summary": summary, "items": [asdict(r) for r in results],
    }
    _atomic_write(out_dir / REPORT_JSON, json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8"))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        row = asdict(r)
        row["duration"] = "" if r.duration is None else f"{r.duration:.3f}"
        row["seconds"] = f"{r.seconds:.2f}"
        writer.writerow([row[c] for c in CSV_COLUMNS])
    _atomic_write(out_dir / REPORT_CSV, text.getvalue().encode("utf-8"))
    return out_dir / REPORT_JSON, out_dir / REPORT_CSV


def _member_name(name: str) -> str:
    """A zip member name that unpacks inside the target folder on every system."""
    if (not name or name != os.path.basename(name) or "\\" in name or name in (".", "..")
            or name.startswith(("/", ".")) or ":" in name or any(ord(c) < 32 for c in name)):
        raise OutputError(f"Refusing to put {name!r} into a zip: member names must be plain file names.")
    return name


def write_zip(zip_path: Path, files: Sequence[Path]) -> Path:
    """A zip of ``files`` under their plain names, written beside and renamed when complete.
    Videos are stored (already compressed), reports deflated."""
    members = [(path, _member_name(path.name)) for path in files]
    temp = zip_path.with_name(f".{zip_path.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(temp, "w") as archive:
            for path, name in members:
                method = zipfile.ZIP_DEFLATED if path.suffix in (".json", ".csv") else zipfile.ZIP_STORED
                archive.write(path, name, compress_type=method)
        os.replace(temp, zip_path)
    except OSError as exc:
        raise OutputError(f"Cannot write {zip_path} ({exc}); check the folder and free disk space.") from exc
    finally:
        temp.unlink(missing_ok=True)  # gone already when the rename succeeded
    return zip_path


# --- running


class _Callbacks:
    """The caller's callbacks, wrapped: an exception from one of them (the host's interrupt)
    stops the batch, while an exception from an item's own work only fails that item."""

    def __init__(self) -> None:
        self.raised: BaseException | None = None

    def wrap(self, fn: Callable[P, T]) -> Callable[P, T]:
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return fn(*args, **kwargs)
            except BaseException as exc:
                self.raised = exc
                raise

        return call


def _ignore(*_: Any) -> None:
    """The callback the caller did not give."""


def _collect() -> None:
    """The default ``release``: free the last item's frame buffers now, not at some later point."""
    gc.collect()


def _file_stamp(path: str) -> list[Any]:
    try:
        st = os.stat(path)
        return [os.path.abspath(path), st.st_size, st.st_mtime_ns]
    except OSError:
        return [os.path.abspath(path), None, None]


_KEY_IGNORES = {"batch_size", "chunk_batches", "models_dir"}
"""Options that change the speed, not the result: a re-run with other values still resumes."""


def _settings(options: LipSyncOptions) -> str:
    return repr(sorted((f.name, getattr(options, f.name)) for f in fields(options) if f.name not in _KEY_IGNORES))


def voice_digests(items: Sequence[BatchItem]) -> dict[int, str]:
    """The digest of each in-memory voice of ``items`` (by id), hashed once for the whole batch."""
    return {
        id(it.audio): f"{it.audio.sample_rate}:{hashlib.sha1(it.audio.samples.tobytes()).hexdigest()}"
        for it in items if isinstance(it.audio, Waveform)
    }


def item_key(item: BatchItem, options: LipSyncOptions, model_name: str, voices: dict[int, str] | None = None) -> str:
    """What an output was made from: the inputs' paths, sizes and times (an in-memory voice's
    samples), the settings that change the result and the model's name."""
    if isinstance(item.audio, Waveform):
        audio: Any = (voices or voice_digests([item]))[id(item.audio)]
    else:
        audio = _file_stamp(item.audio)
    data = [_file_stamp(item.video), audio, item.output_name, model_name, _settings(options)]
    return hashlib.sha1(json.dumps(data, default=str).encode()).hexdigest()[:16]


def batch_key(items: Sequence[BatchItem], options: LipSyncOptions, model_name: str,
              voices: dict[int, str] | None = None) -> str:
    """Names one batch: its items' input and output names (an in-memory voice's samples), the
    settings that change the result and the model. The same batch run again gets the same key,
    so the nodes give it the same folder, where it resumes; an input changed in place does not
    change the key, only its item is redone."""
    voices = voices if voices is not None else voice_digests(items)
    rows = [[it.video, voices[id(it.audio)] if isinstance(it.audio, Waveform) else it.audio, it.output_name]
            for it in items]
    return hashlib.sha1(json.dumps([rows, model_name, _settings(options)]).encode()).hexdigest()[:8]


def _previous(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The last report's finished items by output name ({} when there is none or it is unreadable)."""
    try:
        data = json.loads((out_dir / REPORT_JSON).read_text(encoding="utf-8"))
        return {r["output"]: r for r in data["items"] if r.get("output") and r.get("status") in ("done", "skipped")}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _complete(path: Path, previous: dict[str, Any] | None, key: str) -> tuple[int, float] | None:
    """(frames, seconds) of an output that can be kept, else None."""
    from .video import probe

    if not path.is_file() or (previous is not None and previous.get("key") not in (None, key)):
        return None
    try:
        info = probe(path)
    except LipSyncError:
        return None
    if previous is not None and previous.get("frames") and int(previous["frames"]) != info.frame_count:
        return None
    return info.frame_count, info.duration


def _audio_seconds(audio: str | Waveform) -> float:
    """The audio's length from its header (nothing is decoded); 0 when unknown."""
    if isinstance(audio, Waveform):
        return audio.duration
    import av

    try:
        with av.open(audio, metadata_errors="ignore") as container:
            stream = container.streams.audio[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            return (container.duration or 0) / av.time_base
    except (av.FFmpegError, OSError, IndexError, ValueError):
        return 0.0


def _estimate_frames(item: BatchItem, options: LipSyncOptions) -> int:
    """Frames the item will make (for the overall progress bar); 1 when it cannot be told."""
    from .video import probe

    try:
        info = probe(item.video)
    except LipSyncError:
        return 1
    fps = Fraction(options.fps) if options.fps else info.fps / options.select_every_nth
    frames = math.ceil(_audio_seconds(item.audio) * fps)
    if options.length_policy == "trim":
        frames = min(frames, info.frame_count)
    return max(1, frames)


class _AudioCache:
    """The last prepared voice: one audio × many videos computes its mel spectrogram once."""

    def __init__(self) -> None:
        self._key: Any = None
        self._value: PreparedAudio | None = None

    def get(self, audio: str | Waveform) -> PreparedAudio:
        from .pipeline import prepare_audio

        key = id(audio) if isinstance(audio, Waveform) else audio
        if self._value is None or key != self._key:
            self._value = None  # free the previous one before preparing the next
            self._value, self._key = prepare_audio(audio), key
        return self._value


@dataclass
class _Run:
    """What every item of one batch shares."""

    out_dir: Path
    generator: Generator
    options: LipSyncOptions
    detector: FaceDetector | None
    metadata: dict[str, str] | None
    should_stop: Callable[[], bool] | None
    previous: dict[str, dict[str, Any]]
    audio: _AudioCache = field(default_factory=_AudioCache)


def _run_item(run: _Run, item: BatchItem, result: ItemResult, progress: Callable[[int, int], None]) -> None:
    from .pipeline import lipsync_video

    final = run.out_dir / item.output_name
    kept = _complete(final, run.previous.get(item.output_name), result.key)
    if kept is not None:
        result.status, result.output, (result.frames, result.duration) = "skipped", item.output_name, kept
        return
    final.unlink(missing_ok=True)  # made from other inputs or settings, or damaged: it must not look current
    staged = final.with_name(f".{final.stem}{_STAGED}{final.suffix}")
    done = lipsync_video(
        item.video, run.audio.get(item.audio), staged, run.generator, run.options, detector=run.detector,
        progress=progress, should_stop=run.should_stop, metadata=run.metadata,
    )
    if done.frames_with_face == 0 and run.options.box is None:
        staged.unlink(missing_ok=True)
        raise FaceNotFoundError(
            f"No face was found in any of the {done.frames} frames of {item.video_name}; check that the face is "
            "visible and upright, or give a fixed face box."
        )
    os.replace(staged, final)
    result.status, result.output, result.frames, result.duration = "done", item.output_name, done.frames, done.duration


def _reason(exc: Exception, item: BatchItem) -> str:
    """Our own errors are sentences for users; anything else also says what it was. The
    inputs' folders are left out: the report travels in the zip, the server's layout need not."""
    text = str(exc) if isinstance(exc, LipSyncError) else f"unexpected {type(exc).__name__}: {exc}"
    for path, name in ((item.video, item.video_name), (item.audio, item.audio_name)):
        if isinstance(path, str) and os.path.dirname(path):
            text = text.replace(path, name)
    return text


def _check_names(items: Sequence[BatchItem]) -> None:
    names = [i.output_name.casefold() for i in items]
    if len(set(names)) != len(names):
        raise InputError("Two items of the batch have the same output name; give each a different one.")
    for item in items:
        _member_name(item.output_name)
        if Path(item.output_name).suffix.lower() not in OUTPUT_SUFFIXES:
            raise InputError(f"The output name {item.output_name!r} must end in .mp4 (or .mkv, .mov).")


def run_batch(
    items: Sequence[BatchItem],
    out_dir: str | os.PathLike[str],
    generator: Generator,
    options: LipSyncOptions | None = None,
    *,
    detector: FaceDetector | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_item_start: Callable[[int, int, BatchItem], None] | None = None,
    release: Callable[[], None] | None = None,
    metadata: dict[str, str] | None = None,
    make_zip: bool = True,
    zip_name: str | None = None,
) -> BatchReport:
    """Run every item into ``out_dir`` with the same settings and write the report (and zip).

    ``progress(done, total)`` counts frames over all items; ``on_item_start(index, count, item)``
    is called before each item (1-based); ``release()`` after each (default: a garbage
    collection; the nodes also empty the host's cache). The zip, ``<folder name>.zip`` unless
    ``zip_name``, holds the finished outputs and both reports; it is made when no item was
    stopped. Raises ``Cancelled`` (or the callback's exception) after writing the report when
    the batch is stopped.
    """
    from .faces import create_detector
    from .pipeline import LipSyncOptions

    t0 = time.perf_counter()
    opts = (options or LipSyncOptions()).validated()
    _check_names(items)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.glob(f".*{_STAGED}.*"):  # accepted outputs of a crashed run are redone
        leftover.unlink(missing_ok=True)
    if opts.box is None and detector is None:
        detector = create_detector(opts.detector, models_dir=opts.models_dir)
    calls = _Callbacks()
    run = _Run(out, generator, opts, detector, metadata, calls.wrap(should_stop) if should_stop else None,
               _previous(out))
    model = getattr(generator, "name", "")
    voices = voice_digests(items)
    results = [ItemResult(i, it.video_name, it.audio_name, key=item_key(it, opts, model, voices))
               for i, it in enumerate(items, 1)]
    estimates = [_estimate_frames(it, opts) for it in items]
    report, started = calls.wrap(progress or _ignore), calls.wrap(on_item_start or _ignore)
    finished = calls.wrap(release or _collect)
    frames_before = 0
    try:
        for index, (item, result) in enumerate(zip(items, results)):
            started(index + 1, len(items), item)

            def item_progress(done: int, total: int, index: int = index, before: int = frames_before) -> None:
                estimates[index] = total
                report(before + done, before + sum(estimates[index:]))

            t_item = time.perf_counter()
            try:
                _run_item(run, item, result, item_progress)
            except Cancelled:
                result.status = "cancelled"
                raise
            except Exception as exc:  # the isolation boundary: whatever it was, the reason goes into the report
                if calls.raised is not None:  # the caller's callback stopped us: not this item's fault
                    result.status = "cancelled"
                    raise
                result.status, result.error = "failed", _reason(exc, item)
            except BaseException:  # Ctrl-C, SystemExit
                result.status = "cancelled"
                raise
            finally:
                result.seconds = time.perf_counter() - t_item
            frames_before += estimates[index]
            report(frames_before, frames_before + sum(estimates[index + 1 :]))
            finished()
    except BaseException:
        with contextlib.suppress(OutputError):  # the reason we stopped matters more than the report
            _write_reports(out, results, time.perf_counter() - t0)  # what was done, what was not
        raise
    json_path, csv_path = _write_reports(out, results, time.perf_counter() - t0)
    batch = BatchReport(out, results, json_path, csv_path, seconds=time.perf_counter() - t0)
    if make_zip:
        batch.zip_path = write_zip(out / (zip_name or f"{out.name}.zip"), [*batch.outputs, json_path, csv_path])
    batch.seconds = time.perf_counter() - t0
    return batch


# --- command line


def _parser() -> argparse.ArgumentParser:
    from .types import CompositeMode, DetectorName, LengthPolicy, MissingFacePolicy, choices

    p = argparse.ArgumentParser(
        prog="python -m lipsync batch",
        description="Lip-sync many jobs with one model: one audio on many videos (--audio + --videos), one video with "
        "many audios (--video + --audios), or explicit pairs (--manifest). Each output goes into OUT_DIR with a report "
        "(report.json, report.csv) and OUT_DIR/<name>.zip; a failing item is reported and the rest go on. Running the "
        "same batch again skips the outputs that are already complete. Every path must lie inside --root.",
        epilog="Exit status: 0 when every item is done or skipped, 1 when an item failed (see the report), 2 for bad "
        "usage, 130 when interrupted.",
    )
    p.add_argument("--audio", help="the one voice for every video (with --videos)")
    p.add_argument("--videos", nargs="+", metavar="V", help="videos: files, folders (their videos) or quoted globs")
    p.add_argument("--video", help="the one video for every audio (with --audios)")
    p.add_argument("--audios", nargs="+", metavar="A", help="audios: files, folders (their audios) or quoted globs")
    p.add_argument("--manifest", help="CSV (header video,audio,output) or JSON list of pairs; paths relative to it")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for the outputs, report and zip")
    p.add_argument("--root", help="the folder every input must lie in (default: the manifest's folder, else the "
                   "current folder)")
    p.add_argument("--checkpoint", help="Wav2Lip weights (.pth, .safetensors, .onnx); default: models/wav2lip/")
    p.add_argument("--models-dir", help="models folder (default: $LIPSYNC_MODELS or ./models)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--mode", choices=choices(CompositeMode), default="mouth", help="mouth (default) or reference")
    p.add_argument("--detector", choices=choices(DetectorName), default="auto", help="face detector")
    p.add_argument("--missing-face", choices=choices(MissingFacePolicy), default="passthrough",
                   help="frames without a face (a video with no face at all fails its item)")
    p.add_argument("--box", nargs=4, type=int, metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"), help="fixed face box")
    p.add_argument("--length-policy", choices=choices(LengthPolicy), default="auto", help="audio and video lengths")
    p.add_argument("--batch-size", type=int, default=8, help="faces per model call (default 8)")
    p.add_argument("--lossless", action="store_true", help="FFV1 + FLAC .mkv outputs, bit-exact frames")
    p.add_argument("--no-zip", action="store_true", help="do not write the zip")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per item")
    return p


def _cli_items(args: argparse.Namespace, parser: argparse.ArgumentParser, suffix: str) -> list[BatchItem]:
    modes = [bool(args.audio or args.videos), bool(args.video or args.audios), bool(args.manifest)]
    if sum(modes) != 1:
        parser.error("give exactly one of: --audio with --videos, --video with --audios, or --manifest")
    if args.manifest:
        root = args.root or Path(args.manifest).resolve().parent
        return read_manifest(resolve_inside(root, args.manifest), root, suffix)
    root = args.root or os.getcwd()
    if modes[0]:
        if not (args.audio and args.videos):
            parser.error("--videos needs --audio (the one voice), and --audio needs --videos")
        videos = expand_sources(args.videos, root, VIDEO_SUFFIXES, "video")
        return items_for_videos(videos, resolve_inside(root, args.audio), suffix)
    if not (args.video and args.audios):
        parser.error("--audios needs --video (the one video), and --video needs --audios")
    audios = expand_sources(args.audios, root, AUDIO_SUFFIXES, "audio")
    return items_for_audios(resolve_inside(root, args.video), audios, suffix)


def run_batch_cli(argv: Sequence[str]) -> int:
    """``python -m lipsync batch …``: see ``_parser``."""
    from .cli import find_checkpoint
    from .inference import load_generator
    from .pipeline import LipSyncOptions
    from .types import Box

    parser = _parser()
    args = parser.parse_args(argv)
    items = _cli_items(args, parser, ".mkv" if args.lossless else ".mp4")
    opts = LipSyncOptions(
        mode=args.mode, batch_size=args.batch_size, box=Box(*args.box) if args.box else None, detector=args.detector,
        models_dir=args.models_dir, missing_face=args.missing_face, length_policy=args.length_policy,
        lossless=args.lossless,
    ).validated()
    generator = load_generator(find_checkpoint(args.checkpoint, args.models_dir), args.device)

    def say(index: int, count: int, item: BatchItem) -> None:
        if not args.quiet:
            print(f"item {index}/{count}: {item.title}", file=sys.stderr, flush=True)

    batch = run_batch(items, args.output, generator, opts, on_item_start=say, make_zip=not args.no_zip)
    for r in batch.items:
        if r.status == "failed":
            print(f"failed: item {r.item} ({r.video}, {r.audio}): {r.error}", file=sys.stderr)
    counts = ", ".join(f"{batch.count(s)} {s}" for s in ("done", "skipped", "failed"))
    where = f"; zip: {batch.zip_path}" if batch.zip_path else ""
    print(f"{counts} in {batch.seconds:.1f} s; report: {batch.report_json}{where}", file=sys.stderr)
    return 1 if batch.count("failed") else 0
