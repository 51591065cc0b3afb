"""Segment re-voicing: replace the speech of one time range, keep everything else as it was.

The "corrected script" case: one sentence of a finished video is re-recorded. Only the range
[start, end) changes:

    audio   original ──────┐xfade┌──── new audio (cut or padded to the range) ────┐xfade┌── original
    frames  copied ────────┤ramp ├──── mouth generated from the new audio ──────┤ ramp├── copied

- Outside the range the frames are the decoded input frames, written again: bit-exact with
  ``lossless`` (FFV1 in .mkv), re-encoded once with H.264 otherwise (visually identical, not
  bit-identical). The audio outside the range is the original's samples (exact up to the
  output codec: FLAC stores 16-bit, AAC is lossy).
- The joins: the audio crossfades (equal power, ``crossfade_ms``) inside the range, so nothing
  outside it changes and there is no click; the generated mouth is blended in over the first
  ``ramp_frames`` frames of the range and out over its last ones, so the face does not jump.
- The new audio starts at ``start``; when it is longer than the range its end is cut (a
  warning says by how much), when shorter the rest of the range is silent.

Memory: the video streams as in ``lipsync_video``; the audio track is held whole (float32, about
23 MB per minute of 48 kHz stereo).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..types import Frame, Waveform

if TYPE_CHECKING:
    from ..faces import FaceDetector
    from ..faces.track import FaceTracker
    from ..models.base import Generator
    from ..options import LipSyncOptions
    from .stages import Item

__all__ = ["SegmentResult", "revoice_segment", "splice_audio"]

DEFAULT_CROSSFADE_MS = 15.0
DEFAULT_RAMP_FRAMES = 3


@dataclass
class SegmentResult:
    output: Path
    frames: int
    fps: Fraction
    first_frame: int
    """The first frame of the range (frames first_frame … end_frame - 1 were re-synced)."""
    end_frame: int
    frames_with_face: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    summary: str = ""
    """What was seen in the inputs, one line (``lipsync.engine.summary.describe_inputs``)."""


def _match_format(wave: Waveform, rate: int, channels: int) -> np.ndarray:
    """``wave``'s samples at ``rate`` with ``channels`` (mono is copied, other counts averaged)."""
    x = wave.samples
    if x.shape[0] != channels:
        mono = x.mean(axis=0, keepdims=True) if x.shape[0] > 1 else x
        x = np.repeat(mono, channels, axis=0)
    if wave.sample_rate != rate:
        import soxr

        x = np.asarray(soxr.resample(x.T, wave.sample_rate, rate, quality="HQ"), dtype=np.float32).T
    return np.ascontiguousarray(x, dtype=np.float32)


def splice_audio(
    original: Waveform, new: Waveform, start: float, end: float, crossfade_ms: float = DEFAULT_CROSSFADE_MS
) -> tuple[Waveform, list[str]]:
    """``original`` with [start, end) replaced by ``new`` (at the original's rate and channels).

    Equal-power crossfades (cos/sin) of ``crossfade_ms`` lie inside the range, so every sample
    outside it is the original's. Returns the spliced audio and warnings for the user.
    """
    if not 0 <= start < end:
        raise InputError(f"The range {start:g}–{end:g} s is empty or negative; give 0 <= start < end.")
    rate, channels = original.sample_rate, original.channels
    s0, s1 = round(start * rate), round(end * rate)
    out = original.samples.astype(np.float32, copy=True)
    if out.shape[1] < s1:  # the original ends inside the range: silence after it
        out = np.pad(out, ((0, 0), (0, s1 - out.shape[1])))
    inserted = _match_format(new, rate, channels)
    span, warnings = s1 - s0, []
    if inserted.shape[1] > span:
        have, room = inserted.shape[1] / rate, span / rate
        warnings.append(
            f"The new audio is {have:.2f} s but the range only {room:.2f} s: its last {have - room:.2f} s were cut. "
            f"Set end = start + {have:.2f} to keep it all."
        )
    part = np.zeros((channels, span), np.float32)
    part[:, : min(span, inserted.shape[1])] = inserted[:, :span]
    fade = min(round(crossfade_ms / 1000 * rate), span // 2)
    if fade > 0:
        theta = (np.arange(fade, dtype=np.float64) + 0.5) / fade * (np.pi / 2)
        rise, fall = np.sin(theta).astype(np.float32), np.cos(theta).astype(np.float32)
        part[:, :fade] = out[:, s0 : s0 + fade] * fall + part[:, :fade] * rise
        part[:, span - fade :] = part[:, span - fade :] * fall + out[:, s1 - fade : s1] * rise
    out[:, s0:s1] = part
    return Waveform(out, rate, f"{original.source} re-voiced {start:g}-{end:g} s"), warnings


def ramp_weight(k: int, length: int, ramp_frames: int) -> float:
    """How much of the generated mouth frame ``k`` of a ``length``-frame range shows: rising
    over the first ``ramp_frames`` frames, falling over the last, 1 in between."""
    if ramp_frames <= 0:
        return 1.0
    return min(1.0, (k + 1) / (ramp_frames + 1), (length - k) / (ramp_frames + 1))


def _blend(original: Frame, synced: Frame, weight: float) -> Frame:
    if weight >= 1.0:
        return synced
    mixed = original.astype(np.float32) + (synced.astype(np.float32) - original) * weight
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def _original_audio(path: str, has_audio: bool, duration: float, like: Waveform) -> Waveform:
    from ..media.audio import load_audio

    if has_audio:
        return load_audio(path)
    silent = np.zeros((like.channels, max(1, round(duration * like.sample_rate))), np.float32)
    return Waveform(silent, like.sample_rate, f"{Path(path).name} (no audio: silence)")


def _items(path: str, first: int, stop: int, size: tuple[int, int], opts: LipSyncOptions,
           detector: FaceDetector | None, sar: Fraction = Fraction(1),
           tracker: FaceTracker | None = None) -> Iterator[Item]:
    """Every frame of the video in order; only frames first … stop-1 are tracked (and re-synced)."""
    from ..media.video import iter_frames
    from .stages import NO_FACE, Item, numbered, track_faces

    frames: Iterator[Frame] = iter_frames(path)
    for index, frame in enumerate(islice(frames, first)):
        yield Item(index, frame, NO_FACE)
    yield from numbered(track_faces(islice(frames, stop - first), size, opts.faces, detector, sar, tracker), first)
    for index, frame in enumerate(frames, stop):
        yield Item(index, frame, NO_FACE)


def revoice_segment(
    video: str | os.PathLike[str],
    audio: str | os.PathLike[str] | Waveform,
    output: str | os.PathLike[str],
    generator: Generator,
    options: LipSyncOptions | None = None,
    *,
    start: float,
    end: float,
    crossfade_ms: float = DEFAULT_CROSSFADE_MS,
    ramp_frames: int = DEFAULT_RAMP_FRAMES,
    detector: FaceDetector | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    metadata: dict[str, str] | None = None,
) -> SegmentResult:
    """Write ``output``: ``video`` with the speech of [start, end) seconds replaced by ``audio``
    and the mouth in that range re-synced (see the module docstring). Of ``options`` the source
    group does not apply (the video keeps its length, rate and frames). Runs on the engine's
    stages (``lipsync.engine.stages``): decoding and detection ahead, compositing and encoding
    behind the network. Nothing is written under ``output`` unless the job completes."""
    from ..faces import create_detector
    from ..media.audio import load_audio
    from ..media.video import VideoWriter, picture_changes, probe
    from ..options import LipSyncOptions
    from ..restore import load_restorer
    from .lipsync import prepare_audio
    from .stages import Generating, buffer_sizes, composite, face_tracker, machine_sharing, ramp_cuts, run_stages
    from .summary import describe_inputs

    t0 = time.perf_counter()
    opts = (options or LipSyncOptions()).resolved()
    path = os.fspath(video)
    info = probe(path)
    if info.is_still:
        raise InputError(f"{Path(path).name} is a still image; segment re-voicing needs a video.")
    if start >= info.duration:
        raise InputError(f"The range starts at {start:g} s but {Path(path).name} is only {info.duration:.2f} s long.")
    fps = info.fps
    first, stop = math.ceil(start * fps - 1e-9), math.ceil(end * fps - 1e-9)
    new = audio if isinstance(audio, Waveform) else load_audio(audio)
    original = _original_audio(path, info.has_audio, info.duration, new)
    mixed, warnings = splice_audio(original, new, start, end, crossfade_ms)
    warnings = [*warnings, *picture_changes(info, lossless=opts.encode.lossless)]
    del original
    features = prepare_audio(mixed, generator).features
    if opts.faces.box is None and detector is None:
        detector = create_detector(opts.faces.detector, models_dir=opts.model.models_dir)
    restorer = load_restorer(opts.restore.restore, generator.device) if opts.restore.restore else None
    total = max(info.frame_count, stop)
    size = (info.height, info.width)
    chunk_size, depth = buffer_sizes(opts, size)
    paste = composite(opts.composite)
    work = Generating(generator, features, fps, opts, restorer)
    tracker = face_tracker(size, opts.faces)

    def write(item: Item) -> None:
        if first <= item.index < stop:
            item_frame = _blend(item.frame, paste(item), ramp_weight(item.index - first, stop - first, ramp_frames))
        else:
            item_frame = item.frame
        writer.write(item_frame)

    name = Path(output).name
    with machine_sharing(opts.run.overlap, generator.device, detector), VideoWriter(
        output, fps, audio=mixed, lossless=opts.encode.lossless, metadata=metadata, like=info
    ) as writer:
        written = run_stages(
            _items(path, first, stop, size, opts, detector, info.sample_aspect_ratio, tracker), work, write,
            chunk_size=chunk_size, depth=depth, overlap=opts.run.overlap, origin=first,
            cuts=ramp_cuts(opts, first, stop, chunk_size, generator), should_stop=should_stop,
            stopped=lambda d: f"Stopped after {d} frames; {name} was not written.",
            progress=None if progress is None else (lambda d: progress(d, max(total, d))),
        )
        if written <= first:
            raise InputError(f"{Path(path).name} has only {written} frames; the range starts at frame {first}.")
    if progress is not None:
        progress(written, written)
    if stop > written:
        warnings.append(f"the range ends at {end:g} s but {Path(path).name} ends at {float(written / fps):.2f} s: "
                        f"frames {first}-{written - 1} were re-synced")
    speaker = "fixed box" if opts.faces.box is not None else tracker.speaker_report.describe()
    summary = describe_inputs(info, new.notes, speaker)
    return SegmentResult(Path(output), written, fps, first, min(stop, written), work.with_face, time.perf_counter() - t0,
                         warnings, summary)


