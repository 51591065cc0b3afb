"""Frames in, (frame, face) pairs out: detection every k-th frame and the tracker, or a fixed box.

Detection searches the whole frame every ``full_frame_every``-th frame and only around the last
faces in between, every third frame; the two frames between carry the last faces by the shift of
the picture around them (``RegionDetector``: at 720p a fifth of the CPU of whole-frame searches on
every frame, boxes as steady; ``bench/bench_detect.py``, ``bench/quality``).

``run_detection`` ties a detector and a ``FaceTracker`` over an iterable of frames (streaming:
only the frames awaiting finalisation are held); ``detect_frames`` is its detection half alone
(what a cluster worker runs on a frame range: the tracker then runs once over all of them);
``fixed_box_track`` is the reference's ``--box`` (no detection); ``SquarePixelDetector``
detects on the picture as displayed when the video's pixels are not square.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import replace
from fractions import Fraction

import numpy as np

from ..errors import InputError
from ..media.aspect import to_square_pixels
from ..types import Box, Detection, FaceFrame, Frame
from .detectors import FaceDetector
from .region import FULL_FRAME_EVERY, RegionDetector
from .track import FaceTracker

__all__ = ["SquarePixelDetector", "detect_frames", "fixed_box_track", "range_warmup", "run_detection"]


class SquarePixelDetector:
    """``detector`` run on the picture as displayed, for video whose pixels are not square.

    Detectors are trained on square-pixel images: on a frame stored 192x256 with a sample
    aspect ratio of 4:3 (shown 256x256) they would see faces squeezed to 75 % of their width.
    So each frame is resampled to its displayed shape (``lipsync.media.aspect``), detected there,
    and the boxes and landmarks are mapped back to stored pixels (x divided by the horizontal
    stretch, y by the vertical). A box is then non-square in stored pixels; the generator's crop
    resizes it to its square input, which is the displayed face.
    """

    def __init__(self, detector: FaceDetector, sample_aspect_ratio: Fraction) -> None:
        self.detector = detector
        self.sample_aspect_ratio = sample_aspect_ratio
        self.name = detector.name

    @property
    def full_every(self) -> int:
        """The wrapped ``RegionDetector``'s whole-frame period (1 for any other detector)."""
        return int(getattr(self.detector, "full_every", 1))

    def detect(self, frame: Frame, whole: bool | None = None) -> list[Detection]:
        """The faces of ``frame`` (stored pixels); ``whole`` is passed to a wrapped ``RegionDetector``."""
        view = to_square_pixels(frame, self.sample_aspect_ratio)
        sx, sy = view.shape[1] / frame.shape[1], view.shape[0] / frame.shape[0]
        found = self.detector.detect(view) if whole is None else self.detector.detect(view, whole)  # type: ignore[call-arg]
        return [self._to_stored(d, sx, sy) for d in found]

    @staticmethod
    def _to_stored(d: Detection, sx: float, sy: float) -> Detection:
        landmarks = None
        if d.landmarks is not None:
            landmarks = (np.asarray(d.landmarks, np.float32) / np.array([sx, sy], np.float32)).astype(np.float32)
        return replace(d, x1=d.x1 / sx, x2=d.x2 / sx, y1=d.y1 / sy, y2=d.y2 / sy, landmarks=landmarks)


def detect_frames(
    frames: Iterable[Frame], detector: FaceDetector, detect_every: int = 1, first: int = 0,
    full_frame_every: int = FULL_FRAME_EVERY,
) -> Iterator[list[Detection] | None]:
    """The detections of each frame, None for the frames that are not sampled: frame ``first + i``
    (its index on the job's timeline) is detected when that index is a multiple of ``detect_every``.

    ``full_frame_every`` > 1: of the sampled frames, those whose sample number (index //
    ``detect_every``) is a multiple of it search the whole frame, the others only the regions
    around the faces found last (``RegionDetector``; for detectors that downscale the frame
    themselves, yuface and yunet). 1: always the whole frame. Both rules count on the job's
    timeline, so a frame range that starts at a whole-frame search (``range_warmup``) gives
    exactly the detections a whole run gives there."""
    if detect_every < 1:
        raise InputError(f"detect_every must be >= 1; got {detect_every}.")
    regions = _regions(detector, full_frame_every)
    for i, frame in enumerate(frames, first):
        if i % detect_every:
            yield None
        elif regions is None:
            yield detector.detect(frame)
        else:
            yield regions.detect(frame, whole=(i // detect_every) % regions.full_every == 0)


def range_warmup(start: int, detector: FaceDetector, detect_every: int = 1,
                 full_frame_every: int = FULL_FRAME_EVERY) -> int:
    """The frame to start detecting at so that frame ``start``'s detections equal a whole run's:
    ``start`` itself, or, with region searches, the scheduled whole-frame search one period
    before the one before it (the regions remember the last two such searches)."""
    regions = _regions(detector, full_frame_every)
    if regions is None:
        return start
    period = detect_every * regions.full_every
    return max(0, start - start % period - period)


def _regions(detector: FaceDetector, full_frame_every: int) -> RegionDetector | SquarePixelDetector | None:
    """``detector`` searching regions between whole-frame searches, or None where it cannot (a
    detector that does not downscale the frame itself, or ``full_frame_every`` 1). For pixels
    that are not square the regions are searched in the picture as displayed."""
    if isinstance(detector, RegionDetector):
        return detector
    if isinstance(detector, SquarePixelDetector):
        inner = _regions(detector.detector, full_frame_every)
        return None if inner is None else SquarePixelDetector(inner, detector.sample_aspect_ratio)
    if full_frame_every > 1 and hasattr(detector, "max_side"):
        return RegionDetector(detector, full_frame_every)
    return None


def run_detection(
    frames: Iterable[Frame],
    detector: FaceDetector,
    tracker: FaceTracker,
    detect_every: int = 1,
    full_frame_every: int = FULL_FRAME_EVERY,
) -> Iterator[tuple[Frame, FaceFrame]]:
    """Detect (every ``detect_every``-th frame), track, and pair each frame with its FaceFrame.

    ``full_frame_every`` > 1: of the detections, only every ``full_frame_every``-th searches the
    whole frame, the others the regions around the faces found last (``RegionDetector``; for
    detectors that downscale the frame themselves, yuface and yunet). 1: always the whole frame.

    Only the frames awaiting finalisation are buffered (see FaceTracker for the bound); the
    stream ends with ``tracker.flush()``, so every input frame comes out exactly once, in order.
    """
    waiting: deque[Frame] = deque()

    def checked() -> Iterator[Frame]:
        for i, frame in enumerate(frames):
            if tuple(frame.shape[:2]) != tracker.frame_size:
                raise InputError(
                    f"Frame {i} is {frame.shape[1]}x{frame.shape[0]} but the tracker was made for "
                    f"{tracker.frame_size[1]}x{tracker.frame_size[0]}; all frames must have one size."
                )
            waiting.append(frame)
            yield frame

    for detections in detect_frames(checked(), detector, detect_every, full_frame_every=full_frame_every):
        for face in tracker.push(detections):
            yield waiting.popleft(), face
    for face in tracker.flush():
        yield waiting.popleft(), face


def fixed_box_track(box: Box, frame_size: tuple[int, int]) -> FaceFrame:
    """The FaceFrame for a user-given box (the reference's ``--box``): no detection, no pads, no
    smoothing; the box is used as it is, only clipped to the frame.

    Raises InputError when nothing of it lies inside the frame.
    """
    height, width = int(frame_size[0]), int(frame_size[1])
    clipped = Box(
        top=min(max(int(box.top), 0), height),
        bottom=min(max(int(box.bottom), 0), height),
        left=min(max(int(box.left), 0), width),
        right=min(max(int(box.right), 0), width),
    )
    if not clipped.is_valid():
        raise InputError(
            f"The face box (top, bottom, left, right) = {box.as_tuple()} is empty or outside the "
            f"{width}x{height} frame; give top < bottom <= {height} and left < right <= {width}."
        )
    return FaceFrame(box=clipped, landmarks=None, detected=True)
