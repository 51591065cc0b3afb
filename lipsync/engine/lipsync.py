"""One file: video + audio → a re-synced video file, streaming; or any frame range [a, b) of it.

    source_frames ─► track_faces ─► numbered ─► (chunks) generate ─► composite ─► VideoWriter

A composition of ``lipsync.engine.stages`` (which also run the threads). Its two halves can also
run apart, as a cluster does with a long video: ``plan_job`` fixes the job's timeline,
``detect_range`` detects faces in a frame range, ``track_detections`` (stages) tracks all of them
at once, and ``lipsync_video(..., frames=(a, b), faces=...)`` renders a range with those faces.

What is held at any time is one chunk, the tracker's short look-ahead, the two bounded queues
and the audio features of the whole voice (the mel spectrogram: about 90 MB for two hours). ``progress(done,
total)`` is called after every chunk and ``should_stop()`` before it; stopping raises
``Cancelled`` and the output file is never created (the writer renames its temporary file only
on success).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import islice
from pathlib import Path

from ..errors import Cancelled, FaceNotFoundError, InputError
from ..faces import FaceDetector, create_detector
from ..media import audio as audio_mod
from ..media.video import VideoWriter, picture_changes, probe
from ..models.base import AudioFeatures, Generator
from ..options import LipSyncOptions, RunOptions, default_of
from ..restore import FaceRestorer, load_restorer
from ..types import Detection, FaceFrame, LengthPolicy, VideoInfo, Waveform
from ..faces import detect_frames
from ..faces.run import range_warmup
from .summary import describe_inputs
from .stages import (
    Generating,
    buffer_sizes,
    composite,
    displayed,
    face_tracker,
    machine_sharing,
    numbered,
    output_fps,
    ramp_cuts,
    range_frames,
    run_stages,
    source_frames,
    track_faces,
)

__all__ = [
    "JobPlan",
    "LipSyncOptions",
    "LipSyncResult",
    "PreparedAudio",
    "detect_range",
    "lipsync_video",
    "no_face_warning",
    "plan_job",
    "prepare_audio",
]

ProgressFn = Callable[[int, int], None]
StopFn = Callable[[], bool]

DEFAULT_BATCH_SIZE: int = default_of(RunOptions, "batch_size")


@dataclass
class LipSyncResult:
    """What a job wrote: ``frames`` frames at ``fps`` (``duration`` s), ``frames_with_face`` of them
    re-synced, found by ``detector``, in ``seconds`` of wall time; ``warnings`` for the user."""

    output: Path
    frames: int
    fps: Fraction
    duration: float
    frames_with_face: int
    detector: str
    seconds: float
    warnings: list[str] = field(default_factory=list)
    summary: str = ""
    """What was seen in the inputs, one line (``lipsync.engine.summary.describe_inputs``)."""
    speaker: str = ""
    """Who was followed (``SpeakerReport.describe()``), "fixed box" or "faces given"."""
    face_index_unmet: bool = False
    """Nobody was followed: the chosen face index needs more faces than any frame had
    (``SpeakerReport.index_unmet``; ``speaker`` says how many were seen)."""


@dataclass(frozen=True)
class PreparedAudio:
    """A voice as one generator needs it (``features``), plus what the writer muxes (``source``)."""

    features: AudioFeatures
    source: str | Waveform
    notes: tuple[str, ...] = ()
    """What placing the voice on its file's timeline did (``Waveform.notes``)."""

    @property
    def num_samples_16k(self) -> int:
        return self.features.num_samples_16k

    def frame_count(self, fps: Fraction) -> int:
        return self.features.frame_count(fps)


def prepare_audio(audio: str | os.PathLike[str] | Waveform, generator: Generator) -> PreparedAudio:
    """Load (any format), down-mix, resample to 16 kHz and compute ``generator``'s features."""
    wave = audio if isinstance(audio, Waveform) else audio_mod.load_audio(audio)
    wav16 = audio_mod.to_model_rate(wave)
    source: str | Waveform = wave if isinstance(audio, Waveform) else os.fspath(audio)
    return PreparedAudio(features=generator.prepare_audio(wav16), source=source, notes=wave.notes)


@dataclass(frozen=True)
class JobPlan:
    """A job's output timeline: ``frames`` frames at ``fps`` from ``video`` (``info``), made that
    long by the length ``policy``; ``size`` is (height, width)."""

    video: str
    info: VideoInfo
    fps: Fraction
    frames: int
    policy: LengthPolicy

    @property
    def size(self) -> tuple[int, int]:
        return (self.info.height, self.info.width)


def plan_job(video: str | os.PathLike[str], features: AudioFeatures, options: LipSyncOptions,
             info: VideoInfo | None = None) -> JobPlan:
    """The timeline ``lipsync_video`` makes for ``video`` (``info``: its probe, when made already)
    with these audio features and (resolved) ``options``: the whole audio, unless ``trim`` and a
    shorter video; the reference's frame count with ``reference``."""
    path = os.fspath(video)
    info = info if info is not None else probe(path)
    fps = output_fps(info, options.source)
    if options.reference:
        return JobPlan(path, info, fps, features.reference_frame_count(fps), "loop")
    return JobPlan(path, info, fps, features.frame_count(fps), options.source.length_policy)


def detect_range(plan: JobPlan, options: LipSyncOptions, detector: FaceDetector, frames: tuple[int, int],
                 should_stop: StopFn | None = None) -> list[list[Detection] | None]:
    """The detections of output frames [a, b) of ``plan`` (None for frames ``detect_every``
    skips), for ``track_detections`` to track with the other ranges' (no tracking here)."""
    start, stop = _frame_range(frames, plan.frames)
    detector = displayed(detector, plan.info.sample_aspect_ratio)
    every = options.faces.detect_every
    warm = range_warmup(start, detector, every)  # region searches: from the whole-frame search before
    source = range_frames(plan.video, options.source, plan.frames, plan.policy, warm, stop)
    found: list[list[Detection] | None] = []
    for detections in detect_frames(source, detector, every, first=warm):
        if should_stop is not None and len(found) % 32 == 0 and should_stop():
            raise Cancelled(f"Stopped detecting after {len(found)} of {stop - warm} frames.")
        found.append(detections)
    return found[start - warm:]


def no_face_warning(video_name: str, speaker: str, index_unmet: bool) -> str:
    """What to tell the user when no frame of ``video_name`` had a face to re-sync (the output is
    the video unchanged with the new audio): the face index was beyond the faces (``speaker``
    says how many were seen), or no face was found at all."""
    if index_unmet:
        return f"no face of {video_name} was re-synced: {speaker}; lower the face index, or choose the face by a point or the largest"
    return (f"no face was found in any frame of {video_name}, so the output is the video unchanged with the new "
            "audio; check that the face is visible and upright, or give a fixed face box.")


def _frame_range(frames: tuple[int, int] | None, n_out: int) -> tuple[int, int]:
    if frames is None:
        return 0, n_out
    start, stop = int(frames[0]), min(int(frames[1]), n_out)
    if not 0 <= start < stop:
        raise InputError(f"The frame range [{frames[0]}, {frames[1]}) is empty or outside the job's {n_out} frames.")
    return start, stop


def lipsync_video(
    video: str | os.PathLike[str],
    audio: str | os.PathLike[str] | Waveform | PreparedAudio,
    output: str | os.PathLike[str],
    generator: Generator,
    options: LipSyncOptions | None = None,
    *,
    detector: FaceDetector | None = None,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    metadata: dict[str, str] | None = None,
    restorer: FaceRestorer | None = None,
    frames: tuple[int, int] | None = None,
    audio_track: bool = True,
    faces: Sequence[FaceFrame] | None = None,
) -> LipSyncResult:
    """Re-sync the mouth in ``video`` to ``audio`` and write ``output`` (.mp4, or .mkv lossless).

    The output covers the whole audio (the reference drops its last 3–4 frames) unless the
    length policy is ``trim`` and the video is shorter. ``frames=(a, b)`` writes only output
    frames a … b-1, exactly as a whole run makes them there (detection and smoothing still see
    the frames around them; audio from a/fps on, or none with ``audio_track=False``). Nothing
    is written under ``output`` unless the job completes. ``faces`` (with ``frames``): the tracked
    face of each frame of the range, made beforehand (``detect_range`` + ``track_detections``):
    no detector runs and decoding starts near ``a`` (see ``range_frames``). ``metadata`` becomes
    container tags (see ``VideoWriter``). ``restorer`` (a loaded ``FaceRestorer``) overrides
    ``options.restore.restore`` (a file, loaded here onto the generator's device).

    Raises ``InputError`` (and its kinds) for unusable inputs, ``Cancelled`` when stopped.
    """
    t0 = time.perf_counter()
    opts = (options or LipSyncOptions()).resolved()
    video_path = os.fspath(video)
    info = probe(video_path)  # a bad video is told before the audio is decoded
    prepared = audio if isinstance(audio, PreparedAudio) else prepare_audio(audio, generator)
    features = prepared.features
    plan = plan_job(video_path, features, opts, info)
    fps, n_out, policy, size = plan.fps, plan.frames, plan.policy, plan.size
    start, stop = _frame_range(frames, n_out)

    if faces is not None:
        if frames is None or len(faces) != stop - start:
            raise ValueError(f"faces must come with frames=(a, b) and hold b - a = {stop - start} faces")
        detector = None
        items = numbered(zip(range_frames(video_path, opts.source, n_out, policy, start, stop), faces), start)
    else:
        if opts.faces.box is None and detector is None:
            detector = create_detector(opts.faces.detector, models_dir=opts.model.models_dir)
        tracker = face_tracker(size, opts.faces)  # kept: it says who was followed
        tracked = track_faces(source_frames(video_path, opts.source, n_out, policy), size, opts.faces, detector,  # type: ignore[arg-type]
                             info.sample_aspect_ratio, tracker)
        items = islice(numbered(tracked), start, stop)
    device = generator.device
    if restorer is None and opts.restore.restore:
        restorer = load_restorer(opts.restore.restore, device)
    chunk_size, depth = buffer_sizes(opts, size)
    paste = composite(opts.composite)
    work = Generating(generator, features, fps, opts, restorer)

    audio_source = prepared.source if audio_track else None
    name = Path(output).name
    with machine_sharing(opts.run.overlap, device, detector), VideoWriter(
        output, fps, audio=audio_source, audio_start=float(start / fps), lossless=opts.encode.lossless, metadata=metadata,
        like=info,
    ) as writer:
        try:
            done = run_stages(
                items, work, lambda item: writer.write(paste(item)),
                chunk_size=chunk_size, depth=depth, overlap=opts.run.overlap, origin=0,
                cuts=ramp_cuts(opts, 0, n_out, chunk_size, generator), should_stop=should_stop,
                stopped=lambda d: f"Stopped after {d} of {stop - start} frames; {name} was not written.",
                progress=None if progress is None else (lambda d: progress(d, stop - start)),
            )
        except FaceNotFoundError as exc:
            raise FaceNotFoundError(f"{Path(video_path).name}: {exc}") from exc
        if done == 0:
            raise InputError(f"{Path(video_path).name} gave no frames to process.")
    index_unmet = opts.faces.box is None and faces is None and tracker.speaker_report.index_unmet
    if opts.faces.box is not None:
        speaker = "fixed box"
    else:
        speaker = "faces given" if faces is not None else tracker.speaker_report.describe()
    warnings = picture_changes(info, lossless=opts.encode.lossless)
    if work.with_face == 0:
        warnings.append(no_face_warning(Path(video_path).name, speaker, index_unmet))
    return LipSyncResult(
        output=Path(output),
        frames=done,
        fps=fps,
        duration=float(done / fps),
        frames_with_face=work.with_face,
        detector="fixed box" if opts.faces.box is not None else (
            "given faces" if faces is not None else getattr(detector, "name", "?")),
        seconds=time.perf_counter() - t0,
        warnings=warnings,
        summary=describe_inputs(info, prepared.notes, speaker),
        speaker=speaker,
        face_index_unmet=index_unmet,
    )
