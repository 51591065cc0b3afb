"""The whole job, streaming: video + audio → a re-synced video file.

    decode ─► length policy ─► detect + track ─► chunk ─► crop 96 ─► Wav2Lip ─► composite ─► encode

Frames flow through in chunks of a few model batches, so memory does not grow with the video's
length: what is held at any time is one chunk, the tracker's short look-ahead, and the mel
spectrogram of the audio (about 90 MB for two hours). ``progress(done, total)`` is called after
every chunk and ``should_stop()`` before it; stopping raises ``Cancelled`` and the output file is
never created (the writer renames its temporary file only on success).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from ..media import audio as audio_mod
from ..composite import Blend, ColorMatch, Resampler, paste_mouth, paste_reference
from ..errors import Cancelled, FaceNotFoundError, InputError
from ..options import LipSyncOptions, RunOptions, default_of
from ..faces import FaceDetector, FaceTracker, create_detector, fixed_box_track, openmp_threads, run_detection
from ..faces.smooth import Smoothing
from ..models.wav2lip.preprocess import crop_faces, predict, to_uint8_reference
from ..models.wav2lip.generator import Generator, resolve_device
from ..restore import FaceRestorer, load_restorer, restore_predictions
from ._threads import BackgroundConsumer, InlineConsumer, prefetch
from .length import sequence_frames
from ..types import (
    Box,
    CompositeMode,
    DetectorName,
    FaceChoice,
    FaceFrame,
    Frame,
    LengthPolicy,
    MissingFacePolicy,
    VideoInfo,
    Waveform,
    choices,
)
from ..media.video import VideoWriter, iter_frames, probe

__all__ = ["LipSyncOptions", "LipSyncResult", "PreparedAudio", "lipsync_video", "prepare_audio"]

ProgressFn = Callable[[int, int], None]
StopFn = Callable[[], bool]

DEFAULT_BATCH_SIZE: int = default_of(RunOptions, "batch_size")


@dataclass
class LipSyncResult:
    output: Path
    frames: int
    fps: Fraction
    duration: float
    frames_with_face: int
    detector: str
    seconds: float
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PreparedAudio:
    """The audio as the model needs it, plus what the writer needs to mux the original."""

    mel: np.ndarray
    num_samples_16k: int
    source: str | Waveform

    def frame_count(self, fps: Fraction) -> int:
        return audio_mod.frame_count_for_audio(self.num_samples_16k, fps)


def prepare_audio(audio: str | os.PathLike[str] | Waveform) -> PreparedAudio:
    """Load (any format), down-mix, resample to 16 kHz and compute the mel spectrogram."""
    wave = audio if isinstance(audio, Waveform) else audio_mod.load_audio(audio)
    wav16 = audio_mod.to_model_rate(wave)
    source: str | Waveform = wave if isinstance(audio, Waveform) else os.fspath(audio)
    return PreparedAudio(mel=audio_mod.melspectrogram(wav16), num_samples_16k=len(wav16), source=source)


def _output_fps(info: VideoInfo, opts: LipSyncOptions) -> Fraction:
    if opts.source.fps is not None:
        return Fraction(opts.source.fps).limit_denominator(1001 * 1000)
    return info.fps / opts.source.select_every_nth


def _frame_opener(path: str, opts: LipSyncOptions) -> Callable[[int, int], Iterator[Frame]]:
    """Source frames ``skip … skip+cap-1`` after the user's own frame selection."""

    def open_frames(skip: int, cap: int) -> Iterator[Frame]:
        user_cap = opts.source.frame_load_cap
        if user_cap:
            if skip >= user_cap:
                return iter(())
            cap = min(cap, user_cap - skip) if cap else user_cap - skip
        return iter_frames(
            path,
            frame_load_cap=cap,
            skip_first_frames=opts.source.skip_first_frames + skip * opts.source.select_every_nth,
            select_every_nth=opts.source.select_every_nth,
        )

    return open_frames


def _track(
    frames: Iterable[Frame], info: VideoInfo, opts: LipSyncOptions, detector: FaceDetector | None
) -> Iterator[tuple[Frame, FaceFrame]]:
    if opts.faces.box is not None:
        face = fixed_box_track(opts.faces.box, (info.height, info.width))
        return ((f, face) for f in frames)
    assert detector is not None
    tracker = FaceTracker(
        (info.height, info.width),
        pads=opts.faces.pads,
        smooth_window=opts.faces.smooth_window,
        choice=opts.faces.face_choice,
        face_index=opts.faces.face_index,
        missing=opts.faces.missing_face,
        smoothing=opts.faces.smoothing,
    )
    return run_detection(frames, detector, tracker, detect_every=opts.faces.detect_every)


def _chunks(items: Iterator[tuple[Frame, FaceFrame]], size: int) -> Iterator[list[tuple[Frame, FaceFrame]]]:
    chunk: list[tuple[Frame, FaceFrame]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _generate_chunk(
    chunk: list[tuple[Frame, FaceFrame]],
    mel: np.ndarray,
    generator: Generator,
    opts: LipSyncOptions,
    restorer: FaceRestorer | None = None,
) -> list[np.ndarray | None]:
    """The generated face of each frame of ``chunk`` (None where there is no face)."""
    with_face = [i for i, (_, face) in enumerate(chunk) if face.box is not None]
    out: list[np.ndarray | None] = [None] * len(chunk)
    if not with_face:
        return out
    crops = crop_faces([chunk[i][0] for i in with_face], [chunk[i][1].box for i in with_face])  # type: ignore[misc]
    pred = predict(generator, mel[with_face], crops, opts.run.batch_size)
    if restorer is not None:
        pred = restore_predictions(restorer, pred, opts.restore.restore_strength, opts.restore.restore_fidelity)
    faces = to_uint8_reference(pred) if opts.composite.mode == "reference" else pred
    for k, i in enumerate(with_face):
        out[i] = faces[k]
    return out


def _device_of(generator: Generator) -> torch.device:
    """Where the network runs (a torch module's device), so a restorer can sit next to it."""
    module = getattr(generator, "module", None)
    if isinstance(module, torch.nn.Module):
        return next(module.parameters()).device
    return resolve_device("auto")


def _compositor(opts: LipSyncOptions, writer: VideoWriter) -> Callable[[tuple[Frame, FaceFrame, np.ndarray | None]], None]:
    """Paste one generated face into its frame and encode it (runs in the writer thread).

    The pasted frame goes into one reused buffer: ``writer.write`` has copied it into the
    encoder's own frame by the time it returns. The decoded frame itself is never changed (the
    freeze policy hands the same array over and over)."""
    buffer: list[Frame | None] = [None]

    def composite_and_write(item: tuple[Frame, FaceFrame, np.ndarray | None]) -> None:
        frame, face, generated = item
        if generated is not None and face.box is not None:
            if opts.composite.mode == "reference":
                frame = paste_reference(frame, generated, face.box, out=buffer[0])
            else:
                frame, _ = paste_mouth(
                    frame, generated, face.box, face.landmarks, feather=opts.composite.feather, resample=opts.composite.resample,
                    color_match=opts.composite.color_match, blend=opts.composite.blend, out=buffer[0],
                )
            buffer[0] = frame
        writer.write(frame)

    return composite_and_write


GIL_SWITCH_INTERVAL_S = 0.001
"""Python's GIL switch interval while the stages run in threads (its default is 5 ms)."""


@contextlib.contextmanager
def _quick_gil_handoff(active: bool) -> Iterator[None]:
    """A shorter GIL switch interval for the duration of the job.

    The network's thread lets go of the GIL in every layer and takes it back ~100 times per
    batch; each time a decode or encode thread holds it, the network waits until that thread is
    made to yield, up to the interval. 1 ms instead of 5 made the 10 s 720p job ~5 % faster here.
    The previous interval is put back afterwards (unless someone else changed it meanwhile).
    """
    before = sys.getswitchinterval()
    if not active or before <= GIL_SWITCH_INTERVAL_S:
        yield
        return
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    try:
        yield
    finally:
        if sys.getswitchinterval() == GIL_SWITCH_INTERVAL_S:
            sys.setswitchinterval(before)


FRAME_BUFFER_BYTES = 768 * 2**20
"""About this much memory holds frames in flight (a chunk plus the queues before and after the
network): at 720p that is the full 4-batch chunk, at 4K it shrinks to keep memory flat."""


def _buffer_sizes(opts: LipSyncOptions, info: VideoInfo) -> tuple[int, int]:
    """(frames per chunk, depth of each background queue), bounded by FRAME_BUFFER_BYTES."""
    frame_bytes = max(1, info.width * info.height * 3)
    share = max(1, FRAME_BUFFER_BYTES // 3 // frame_bytes)
    chunk = max(opts.run.batch_size, min(opts.run.batch_size * max(1, opts.run.chunk_batches), share))
    return chunk, max(2, min(chunk + 8, share))


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
) -> LipSyncResult:
    """Re-sync the mouth in ``video`` to ``audio`` and write ``output`` (.mp4, or .mkv lossless).

    The output covers the whole audio (the reference drops its last 3–4 frames) unless the
    length policy is ``trim`` and the video is shorter. Nothing is written under ``output``
    unless the job completes. ``metadata`` becomes container tags (see ``VideoWriter``).
    ``restorer`` (a loaded ``FaceRestorer``) overrides ``options.restore.restore`` (a file, loaded here
    onto the network's device).
    """
    t0 = time.perf_counter()
    opts = (options or LipSyncOptions()).resolved()
    video_path = os.fspath(video)
    info = probe(video_path)
    fps = _output_fps(info, opts)
    prepared = audio if isinstance(audio, PreparedAudio) else prepare_audio(audio)

    if opts.reference:
        windows_all: np.ndarray | None = audio_mod.mel_windows(prepared.mel, fps, 0, reference=True)
        n_out, policy = len(windows_all), "loop"
    else:
        windows_all, n_out, policy = None, prepared.frame_count(fps), opts.source.length_policy

    if opts.faces.box is None and detector is None:
        detector = create_detector(opts.faces.detector, models_dir=opts.model.models_dir)
    device = _device_of(generator)
    if restorer is None and opts.restore.restore:
        restorer = load_restorer(opts.restore.restore, device)
    frames = sequence_frames(_frame_opener(video_path, opts), n_out, policy)  # type: ignore[arg-type]
    tracked = _track(frames, info, opts, detector)

    done = with_face = 0
    chunk_size, depth = _buffer_sizes(opts, info)
    # Beside a network on the CPU, one OpenMP thread per detection wastes least; beside a GPU
    # the detector is the slowest stage and gets every core.
    share_cpu = opts.run.overlap and device.type == "cpu"
    with _quick_gil_handoff(opts.run.overlap), openmp_threads(detector, 1 if share_cpu else None), VideoWriter(
        output, fps, audio=prepared.source, lossless=opts.encode.lossless, metadata=metadata
    ) as writer:
        # Decode + detect run ahead in one thread, composite + encode behind in another, while
        # this thread feeds the network.
        if opts.run.overlap:
            items = prefetch(tracked, depth=depth)
            sink: BackgroundConsumer[Any] | InlineConsumer[Any] = BackgroundConsumer(_compositor(opts, writer), depth=depth)
        else:
            items = iter(tracked)
            sink = InlineConsumer(_compositor(opts, writer))
        try:
            for chunk in _chunks(items, chunk_size):
                if should_stop is not None and should_stop():
                    raise Cancelled(f"Stopped after {done} of {n_out} frames; {Path(output).name} was not written.")
                if windows_all is not None:
                    mel = windows_all[done : done + len(chunk)]
                else:
                    mel = audio_mod.mel_windows(
                        prepared.mel, fps, len(chunk), offset_ms=opts.sync.audio_offset_ms, first_frame=done
                    )
                for (frame, face), generated in zip(chunk, _generate_chunk(chunk, mel, generator, opts, restorer)):
                    sink.put((frame, face, generated))
                with_face += sum(1 for _, face in chunk if face.box is not None)
                done += len(chunk)
                if progress is not None:
                    progress(done, n_out)
            sink.finish()
        except BaseException as exc:
            sink.cancel()
            close = getattr(items, "close", None)
            if close is not None:
                close()
            if isinstance(exc, FaceNotFoundError):
                raise FaceNotFoundError(f"{Path(video_path).name}: {exc}") from exc
            raise
        if done == 0:
            raise InputError(f"{Path(video_path).name} gave no frames to process.")
    warnings = []
    if with_face == 0:
        warnings.append(
            f"no face was found in any frame of {Path(video_path).name}, so the output is the video unchanged "
            "with the new audio; check that the face is visible and upright, or give a fixed face box."
        )
    return LipSyncResult(
        output=Path(output),
        frames=done,
        fps=fps,
        duration=float(done / fps),
        frames_with_face=with_face,
        detector="fixed box" if opts.faces.box is not None else getattr(detector, "name", "?"),
        seconds=time.perf_counter() - t0,
        warnings=warnings,
    )
