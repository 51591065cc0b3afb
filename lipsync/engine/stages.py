"""The stages of a lip-sync job, as generators over small typed values, and the loop that runs them.

    source_frames ─► track_faces ─► numbered ─► chunked ─► generate ─► composite ─► encode
    (decode +        (detect, choose,  (Item: index,  (chunks on a    (crops + audio   (one paste    (VideoWriter)
     length policy)   pad, smooth)      frame, face)   frame grid)     windows → faces)  dispatcher)

A job is a short composition of these (``lipsync.engine.lipsync`` for one file or a frame range of
it, ``lipsync.engine.segment`` for one time range): each builds its stream of ``Item``s and a sink,
and hands them to ``run_stages``, which runs decode + detection ahead in one thread and
composite + encode behind in another while the calling thread feeds the generator, with a short
GIL switch interval and the detector's OpenMP threads set for the machine (``machine_sharing``).
Memory does not grow with the length: what is held is one chunk and the two bounded queues.

Frames are addressed by their index on the job's output timeline: audio windows come from
``AudioFeatures.windows(fps, index, …)`` and chunks start on multiples of the chunk size from the
grid's origin, so a job over frames [a, b) asks the generator the same questions a whole run asks.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import islice
from typing import Any

import numpy as np

from ..composite import first_face_row, paste
from ..errors import Cancelled
from ..faces import FaceDetector, FaceTracker, fixed_box_track, openmp_threads, run_detection
from ..faces.run import SquarePixelDetector
from ..media.formats import frame_rate
from ..media.video import iter_frames, indexed_frame_count
from ..models.base import AudioFeatures, Generator, crop_faces
from ..options import CompositeOptions, FaceOptions, LipSyncOptions, SourceOptions
from ..restore import FaceRestorer, restore_predictions
from ..types import Box, Detection, FaceFrame, Frame, LengthPolicy, VideoInfo
from ._threads import BackgroundConsumer, InlineConsumer, prefetch
from .length import sequence_frames

__all__ = [
    "NO_FACE",
    "FRAME_BUFFER_BYTES",
    "Generating",
    "Item",
    "buffer_sizes",
    "chunked",
    "composite",
    "displayed",
    "face_tracker",
    "generate",
    "machine_sharing",
    "numbered",
    "output_fps",
    "ramp_cuts",
    "run_stages",
    "range_frames",
    "source_frames",
    "track_detections",
    "track_faces",
]

NO_FACE = FaceFrame(box=None, landmarks=None, detected=False)
"""The face of a frame that is passed through as it is."""


@dataclass
class Item:
    """One frame on its way through the stages.

    ``index``: its place on the job's output timeline (frame 0 = the first output frame).
    ``face``: the tracked face (box None: the frame passes unchanged). ``region``: the frame
    region the generator crops and its face is pasted into. ``generated``: the face to paste,
    in the form ``composite`` takes for the mode (see ``lipsync.composite.paste``).
    """

    index: int
    frame: Frame
    face: FaceFrame
    region: Box | None = None
    generated: np.ndarray | None = None


# --- decode, length policy, tracking


def output_fps(info: VideoInfo, source: SourceOptions) -> Fraction:
    """The output frame rate: the user's ``fps``, else the file's divided by ``select_every_nth``."""
    if source.fps is not None:
        return frame_rate(source.fps)
    return info.fps / source.select_every_nth


def _frame_opener(path: str, source: SourceOptions) -> Callable[[int, int], Iterator[Frame]]:
    """Source frames ``skip … skip+cap-1`` after the user's own frame selection."""

    def open_frames(skip: int, cap: int) -> Iterator[Frame]:
        user_cap = source.frame_load_cap
        if user_cap:
            if skip >= user_cap:
                return iter(())
            cap = min(cap, user_cap - skip) if cap else user_cap - skip
        return iter_frames(
            path,
            frame_load_cap=cap,
            skip_first_frames=source.skip_first_frames + skip * source.select_every_nth,
            select_every_nth=source.select_every_nth,
        )

    return open_frames


def source_frames(path: str, source: SourceOptions, n_out: int, policy: LengthPolicy) -> Iterator[Frame]:
    """Decode: the selected frames of ``path``, made ``n_out`` long by the length ``policy``
    (streaming; see ``lipsync.engine.length``)."""
    return sequence_frames(_frame_opener(path, source), n_out, policy)


def range_frames(path: str, source: SourceOptions, n_out: int, policy: LengthPolicy, start: int,
                 stop: int) -> Iterator[Frame]:
    """Frames ``start … stop-1`` of ``source_frames(path, source, n_out, policy)``, the same
    pixels. Where the range lies in the video's first pass and ``lipsync.media.video`` knows the
    file's keyframes (``index_keyframes``), decoding starts at the keyframe before ``start``;
    otherwise the stream is read from its first frame and the frames before ``start`` dropped."""
    known = indexed_frame_count(path)
    if known is not None:
        nth, skip, cap = source.select_every_nth, source.skip_first_frames, source.frame_load_cap
        first_pass = max(0, -(-(known - skip) // nth))
        if cap:
            first_pass = min(first_pass, cap)
        if stop <= first_pass:
            return _frame_opener(path, source)(start, stop - start)
    return islice(source_frames(path, source, n_out, policy), start, stop)


def face_tracker(frame_size: tuple[int, int], faces: FaceOptions, kind: type[FaceTracker] = FaceTracker) -> FaceTracker:
    """The tracker ``faces`` describes, for frames of ``frame_size`` (height, width): the one
    place that builds it, for a whole run, a cluster's driver and the Detect Faces node alike
    (``kind``: a FaceTracker subclass, e.g. one that records what it was given)."""
    return kind(
        frame_size,
        pads=faces.pads,
        smooth_window=faces.smooth_window,
        choice=faces.face_choice,
        face_index=faces.face_index,
        missing=faces.missing_face,
        smoothing=faces.smoothing,
        point=faces.face_point,
    )


def displayed(detector: FaceDetector, sample_aspect_ratio: Fraction) -> FaceDetector:
    """``detector`` as it must run on a video with this sample aspect ratio: on the picture as
    displayed (``SquarePixelDetector``) when the pixels are not square, boxes in stored pixels."""
    return detector if sample_aspect_ratio == 1 else SquarePixelDetector(detector, sample_aspect_ratio)


def track_faces(
    frames: Iterable[Frame], frame_size: tuple[int, int], faces: FaceOptions, detector: FaceDetector | None,
    sample_aspect_ratio: Fraction = Fraction(1), tracker: FaceTracker | None = None,
) -> Iterator[tuple[Frame, FaceFrame]]:
    """Detect + track: each frame with the face to re-sync in it (a fixed ``faces.box``: no detection).

    Frames stay in stored pixels; with non-square pixels (``sample_aspect_ratio`` != 1, from
    ``probe``) faces are detected on the picture as displayed (see ``displayed``). ``tracker``:
    one made by ``face_tracker`` for these options, to read its ``speaker_report`` after."""
    if faces.box is not None:
        face = fixed_box_track(faces.box, frame_size)
        return ((f, face) for f in frames)
    assert detector is not None
    return run_detection(frames, displayed(detector, sample_aspect_ratio), tracker or face_tracker(frame_size, faces),
                         detect_every=faces.detect_every)


def track_detections(
    detections: Iterable[list[Detection] | None], frame_size: tuple[int, int], faces: FaceOptions,
    tracker: FaceTracker | None = None,
) -> Iterator[FaceFrame]:
    """The tracking half of ``track_faces``: one FaceFrame per frame from each frame's detections
    (None: not sampled), in order, exactly as ``track_faces`` pairs them with the frames."""
    tracker = tracker or face_tracker(frame_size, faces)
    for found in detections:
        yield from tracker.push(found)
    yield from tracker.flush()


def numbered(tracked: Iterable[tuple[Frame, FaceFrame]], first: int = 0) -> Iterator[Item]:
    """Items for (frame, face) pairs, numbered from ``first`` on the output timeline."""
    return (Item(i, frame, face) for i, (frame, face) in enumerate(tracked, first))


def chunked(items: Iterable[Item], size: int, origin: int = 0, cuts: Collection[int] = ()) -> Iterator[list[Item]]:
    """Lists of consecutive items that never cross a multiple of ``size`` counted from ``origin``
    nor an index in ``cuts`` (so a job that starts mid-way forms the same chunks as a whole run
    from there on)."""
    chunk: list[Item] = []
    for item in items:
        if chunk and ((item.index - origin) % size == 0 or item.index in cuts):
            yield chunk
            chunk = []
        chunk.append(item)
    if chunk:
        yield chunk


# --- the model


def generate(
    chunk: Sequence[Item],
    generator: Generator,
    features: AudioFeatures,
    fps: Fraction,
    options: LipSyncOptions,
    restorer: FaceRestorer | None = None,
) -> None:
    """Fill ``region`` and ``generated`` of every item of ``chunk`` that has a face.

    The chunk's items must be consecutive on the timeline. Crops are the generator's
    (``CropSpec``), audio windows come from ``features`` at the items' indices; ``options.reference``
    uses the original code's window rule; the reference paste gets the generator's own uint8
    faces, batched as the original batches them (``Generator.generate``'s ``reference``)."""
    with_face = [k for k, item in enumerate(chunk) if item.face.box is not None]
    if not with_face:
        return
    size = (chunk[0].frame.shape[0], chunk[0].frame.shape[1])
    for k in with_face:
        chunk[k].region = generator.crop.region(chunk[k].face.box, size)  # type: ignore[arg-type]
    windows = features.windows(fps, chunk[0].index, len(chunk), offset_ms=options.sync.audio_offset_ms,
                               reference=options.reference)
    crops = crop_faces([chunk[k].frame for k in with_face], [chunk[k].region for k in with_face],  # type: ignore[misc]
                       generator.crop)
    # Asked only when it matters, so a generator written before the keywords keeps working.
    asked: dict[str, Any] = {"reference": True} if options.composite.mode == "reference" else {}
    if options.composite.mode == "mouth" and restorer is None and getattr(generator, "partial_rows", False):
        # The mouth paste reads only the lower face: the network need not make the rest.
        asked["rows_from"] = min(first_face_row(chunk[k].region, chunk[k].face.landmarks, generator.crop.size)  # type: ignore[arg-type]
                                 for k in with_face)
    faces = generator.generate(crops, windows[with_face], options.run.batch_size, **asked)
    if restorer is not None:
        faces = restore_predictions(restorer, faces, options.restore.restore_strength, options.restore.restore_fidelity)
    if options.composite.mode == "reference":
        faces = generator.to_uint8_reference(faces)
    for j, k in enumerate(with_face):
        chunk[k].generated = faces[j]


class Generating:
    """The work step of a job for ``run_stages``: ``generate`` each chunk and count the frames
    that had a face (``with_face``)."""

    def __init__(self, generator: Generator, features: AudioFeatures, fps: Fraction, options: LipSyncOptions,
                 restorer: FaceRestorer | None = None) -> None:
        self.generator, self.features, self.fps, self.options, self.restorer = generator, features, fps, options, restorer
        self.with_face = 0

    def __call__(self, chunk: list[Item]) -> None:
        generate(chunk, self.generator, self.features, self.fps, self.options, self.restorer)
        self.with_face += sum(1 for item in chunk if item.face.box is not None)


# --- back into the frame


def composite(options: CompositeOptions) -> Callable[[Item], Frame]:
    """A function giving each item's frame with its generated face pasted (the frame itself when
    there is none). The pasted frame lives in one reused buffer, valid until the next call: a
    sink encodes (copies) it before asking for the next. The decoded frame is never changed (the
    freeze policy hands the same array over and over)."""
    buffer: list[Frame | None] = [None]

    def pasted(item: Item) -> Frame:
        if item.generated is None or item.region is None:
            return item.frame
        frame, _ = paste(item.frame, item.generated, item.region, item.face.landmarks, options, out=buffer[0])
        buffer[0] = frame
        return frame

    return pasted


# --- running the stages


GIL_SWITCH_INTERVAL_S = 0.001
"""Python's GIL switch interval while the stages run in threads (its default is 5 ms)."""


@contextlib.contextmanager
def _quick_gil_handoff(active: bool) -> Iterator[None]:
    """A shorter GIL switch interval for the duration of the job.

    The network's thread lets go of the GIL in every layer and takes it back ~100 times per
    batch; each time a decode or encode thread holds it, the network waits until that thread is
    made to yield, up to the interval: 1 ms instead of 5 keeps the network's waits short. The
    previous interval is put back afterwards (unless someone else changed it meanwhile).
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


@contextlib.contextmanager
def machine_sharing(overlap: bool, device: Any, detector: FaceDetector | None) -> Iterator[None]:
    """How the stages share the machine for one job: a short GIL switch interval when they run
    in threads, and one OpenMP thread per detection beside a network on the CPU (there the
    cores are the network's; beside a GPU the detector is the slowest stage and gets them all)."""
    share_cpu = overlap and getattr(device, "type", "cpu") == "cpu"
    with _quick_gil_handoff(overlap), openmp_threads(detector, 1 if share_cpu else None):
        yield


FRAME_BUFFER_BYTES = 768 * 2**20
"""About this much memory holds frames in flight (a chunk plus the queues before and after the
network): at 720p that is the full 4-batch chunk, at 4K it shrinks to keep memory flat."""


def buffer_sizes(options: LipSyncOptions, frame_size: tuple[int, int]) -> tuple[int, int]:
    """(frames per chunk, depth of each background queue), bounded by FRAME_BUFFER_BYTES."""
    run = options.run
    frame_bytes = max(1, frame_size[0] * frame_size[1] * 3)
    share = max(1, FRAME_BUFFER_BYTES // 3 // frame_bytes)
    chunk = max(run.batch_size, min(run.batch_size * max(1, run.chunk_batches), share))
    return chunk, max(2, min(chunk + 8, share))


def ramp_cuts(options: LipSyncOptions, origin: int, total: int | None, chunk_size: int,
              generator: Generator | None = None) -> frozenset[int]:
    """Where a job's first and last chunk are cut to one network batch (indices for ``chunked``'s
    ``cuts``): the network starts after one batch is decoded and detected instead of a whole
    chunk, and the composite and encoding left after its last batch is one batch long, so the
    cores idle less at both ends. Absolute positions (``origin`` + one batch; ``total`` − one
    batch), so a range of the job forms the same batches as the whole run. None in the
    reference paste, which keeps the original's batching, nor while ``generator`` is not
    ``ready`` (an int8 network calibrates on its first chunk: a whole one)."""
    step = options.run.batch_size
    if options.composite.mode == "reference" or chunk_size <= step or not getattr(generator, "ready", True):
        return frozenset()
    cuts = {origin + step}
    if total is not None and total - step > origin + step:
        cuts.add(total - step)
    return frozenset(cuts)


def run_stages(
    items: Iterator[Item],
    work: Callable[[list[Item]], None],
    sink: Callable[[Item], None],
    *,
    chunk_size: int,
    depth: int,
    overlap: bool,
    origin: int = 0,
    cuts: Collection[int] = (),
    should_stop: Callable[[], bool] | None = None,
    stopped: Callable[[int], str] = lambda done: f"Stopped after {done} frames.",
    progress: Callable[[int], None] | None = None,
) -> int:
    """Pull ``items`` in chunks (see ``chunked``), ``work`` on each chunk in this thread, then hand
    its items to ``sink`` in order; returns how many items went through.

    With ``overlap``, ``items`` are produced ahead in one background thread and ``sink`` runs in
    another (bounded queues of ``depth``). ``cuts``: more chunk boundaries (``ramp_cuts``). ``should_stop()`` is asked before every chunk: True
    raises ``Cancelled(stopped(done))``. ``progress(done)`` after every chunk. On any error both
    threads are stopped before it propagates."""
    source: Iterator[Item] = prefetch(items, depth=depth) if overlap else iter(items)
    consumer: BackgroundConsumer[Item] | InlineConsumer[Item] = (
        BackgroundConsumer(sink, depth=depth) if overlap else InlineConsumer(sink)
    )
    done = 0
    try:
        for chunk in chunked(source, chunk_size, origin, cuts):
            if should_stop is not None and should_stop():
                raise Cancelled(stopped(done))
            work(chunk)
            for item in chunk:
                consumer.put(item)
            done += len(chunk)
            if progress is not None:
                progress(done)
        consumer.finish()
    except BaseException:
        consumer.cancel()
        close = getattr(source, "close", None)
        if close is not None:
            close()
        raise
    return done
