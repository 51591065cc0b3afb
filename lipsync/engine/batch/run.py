"""Batch production: one voice × many videos, many voices × one video, or explicit pairs.

    items ─► for each item: done before? skip ─► lipsync_video (same settings, one model) ─► release
          └► report.json + report.csv (atomic) ─► <folder>.zip of the outputs and reports (atomic)

- Items (``batch_items``) come from ``items_for_videos`` (one audio × videos: outputs named after the videos),
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
- The report and zip are written by ``batch_report``; the CLI, ``python -m lipsync batch``, is
  ``batch_cli.run_batch_cli``. Their public names are re-exported here.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .items import (
    AUDIO_SUFFIXES,
    OUTPUT_SUFFIXES,
    VIDEO_SUFFIXES,
    BatchItem,
    Roots,  # noqa: F401 (re-exported: it was defined here)
    expand_sources,
    items_for_audios,
    items_for_videos,
    output_name,
    read_manifest,
    resolve_inside,
)
from .keys import kept_output, previous_results, batch_key, item_key, voice_digests
from .report import (
    CSV_COLUMNS,
    REPORT_CSV,
    REPORT_JSON,
    STATUSES,
    ItemResult,
    ItemStatus,
    _member_name,
    _write_reports,
    write_zip,
)
from ...errors import Cancelled, FaceNotFoundError, InputError, LipSyncError, OutputError
from ...types import Waveform

if TYPE_CHECKING:
    from ...faces import FaceDetector
    from ...models.base import Generator
    from ...options import LipSyncOptions
    from ..lipsync import LipSyncResult, PreparedAudio

__all__ = [
    "AUDIO_SUFFIXES",
    "CSV_COLUMNS",
    "OUTPUT_SUFFIXES",
    "REPORT_CSV",
    "REPORT_JSON",
    "STATUSES",
    "VIDEO_SUFFIXES",
    "AudioCache",
    "BatchItem",
    "BatchReport",
    "ItemResult",
    "ItemStatus",
    "batch_key",
    "check_names",
    "estimate_frames",
    "finish_batch",
    "expand_sources",
    "item_key",
    "items_for_audios",
    "items_for_videos",
    "output_name",
    "read_manifest",
    "reason",
    "remove_staged",
    "render_item",
    "resolve_inside",
    "run_batch",
    "skip_if_done",
    "staged_path",
    "voice_digests",
    "write_zip",
]

_STAGED = ".resync-staged"
T = TypeVar("T")
P = ParamSpec("P")


# --- results


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


def estimate_frames(item: BatchItem, options: LipSyncOptions) -> int:
    """Frames the item will make (for the overall progress bar); 1 when it cannot be told."""
    from ...media.video import probe

    try:
        info = probe(item.video)
    except LipSyncError:
        return 1
    fps = Fraction(options.source.fps) if options.source.fps else info.fps / options.source.select_every_nth
    frames = math.ceil(_audio_seconds(item.audio) * fps)
    if options.source.length_policy == "trim":
        frames = min(frames, info.frame_count)
    return max(1, frames)


class AudioCache:
    """The last prepared voice: one audio × many videos computes its mel spectrogram once."""

    def __init__(self) -> None:
        self._key: Any = None
        self._value: PreparedAudio | None = None

    def get(self, audio: str | Waveform, generator: Generator, key: Any = None) -> PreparedAudio:
        """``audio`` prepared for ``generator``; computed again only when ``key`` (default: the
        path, or the Waveform object) differs from the last one's."""
        from ..lipsync import prepare_audio

        if key is None:
            key = id(audio) if isinstance(audio, Waveform) else audio
        if self._value is None or key != self._key:
            self._value = None  # free the previous one before preparing the next
            self._value, self._key = prepare_audio(audio, generator), key
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
    audio: AudioCache = field(default_factory=AudioCache)


def staged_path(final: Path, attempt: int | None = None) -> Path:
    """Where an item is made before it is accepted under ``final``: a hidden name beside it (a
    cluster's attempt number in it, so two attempts never write one file)."""
    tag = f".a{attempt}" if attempt is not None else ""
    return final.with_name(f".{final.stem}{_STAGED}{tag}{final.suffix}")


def remove_staged(out_dir: Path) -> None:
    """Delete what unfinished items left in ``out_dir``: staged outputs and their writers'
    temporary files (only call this when no writer is running there)."""
    for leftover in out_dir.glob(f".*{_STAGED}*"):
        leftover.unlink(missing_ok=True)


def render_item(
    item: BatchItem,
    staged: Path,
    generator: Generator,
    options: LipSyncOptions,
    audio: PreparedAudio,
    *,
    detector: FaceDetector | None,
    progress: Callable[[int, int], None] | None,
    should_stop: Callable[[], bool] | None,
    metadata: dict[str, str] | None,
) -> LipSyncResult:
    """Make one item's output at ``staged``; what ``lipsync_video`` says it wrote. An output without any face is
    deleted and fails its item (FaceNotFoundError), unless the face box is fixed."""
    from ..lipsync import lipsync_video

    done = lipsync_video(
        item.video, audio, staged, generator, options, detector=detector,
        progress=progress, should_stop=should_stop, metadata=metadata,
    )
    if done.frames_with_face == 0 and done.face_index_unmet:
        staged.unlink(missing_ok=True)
        raise FaceNotFoundError(f"{item.video_name}: {done.speaker}; lower the face index.")
    if done.frames_with_face == 0 and options.faces.box is None:
        staged.unlink(missing_ok=True)
        raise FaceNotFoundError(
            f"No face was found in any of the {done.frames} frames of {item.video_name}; check that the face is "
            "visible and upright, or give a fixed face box."
        )
    return done


def skip_if_done(item: BatchItem, result: ItemResult, out_dir: Path, previous: dict[str, dict[str, Any]]) -> bool:
    """Mark ``result`` skipped when ``item``'s output is complete and current (True); otherwise
    remove an output made from other inputs or settings (it must not look current) and False."""
    final = out_dir / item.output_name
    kept = kept_output(final, previous.get(item.output_name), result.key)
    if kept is not None:
        result.status, result.output, (result.frames, result.duration) = "skipped", item.output_name, kept
        return True
    final.unlink(missing_ok=True)
    return False


def _run_item(run: _Run, item: BatchItem, result: ItemResult, progress: Callable[[int, int], None]) -> None:
    if skip_if_done(item, result, run.out_dir, run.previous):
        return
    final = run.out_dir / item.output_name
    staged = staged_path(final)
    result.attempts = 1
    done = render_item(
        item, staged, run.generator, run.options, run.audio.get(item.audio, run.generator), detector=run.detector,
        progress=progress, should_stop=run.should_stop, metadata=run.metadata,
    )
    os.replace(staged, final)
    result.status, result.output = "done", item.output_name
    result.frames, result.duration = done.frames, done.duration
    result.warnings, result.seen = list(done.warnings), done.summary


def reason(exc: Exception, item: BatchItem) -> str:
    """Our own errors are sentences for users; anything else also says what it was. The
    inputs' folders are left out: the report travels in the zip, the server's layout need not."""
    text = str(exc) if isinstance(exc, LipSyncError) else f"unexpected {type(exc).__name__}: {exc}"
    for path, name in ((item.video, item.video_name), (item.audio, item.audio_name)):
        if isinstance(path, str) and os.path.dirname(path):
            text = text.replace(path, name)
    return text


def check_names(items: Sequence[BatchItem]) -> None:
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
    from ...faces import create_detector
    from ...options import LipSyncOptions

    t0 = time.perf_counter()
    opts = (options or LipSyncOptions()).resolved()
    check_names(items)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_staged(out)  # accepted outputs of a crashed run are redone
    if opts.faces.box is None and detector is None:
        detector = create_detector(opts.faces.detector, models_dir=opts.model.models_dir)
    calls = _Callbacks()
    run = _Run(out, generator, opts, detector, metadata, calls.wrap(should_stop) if should_stop else None,
               previous_results(out))
    model = getattr(generator, "name", "")
    voices = voice_digests(items)
    results = [ItemResult(i, it.video_name, it.audio_name, key=item_key(it, opts, model, voices))
               for i, it in enumerate(items, 1)]
    estimates = [estimate_frames(it, opts) for it in items]
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
                result.status, result.error = "failed", reason(exc, item)
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
    return finish_batch(out, results, t0, make_zip=make_zip, zip_name=zip_name)


def finish_batch(out: Path, results: list[ItemResult], t0: float, *, make_zip: bool,
                 zip_name: str | None) -> BatchReport:
    """The end of a batch (local or on a cluster): the final report, the zip of the outputs and
    the report (``make_zip``), timed from ``t0`` (``time.perf_counter``)."""
    json_path, csv_path = _write_reports(out, results, time.perf_counter() - t0)
    batch = BatchReport(out, results, json_path, csv_path, seconds=time.perf_counter() - t0)
    if make_zip:
        batch.zip_path = write_zip(out / (zip_name or f"{out.name}.zip"), [*batch.outputs, json_path, csv_path])
    batch.seconds = time.perf_counter() - t0
    return batch
