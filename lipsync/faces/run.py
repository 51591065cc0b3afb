"""Frames in, (frame, face) pairs out: detection every k-th frame and the tracker, or a fixed box.

Detection searches the whole frame every ``full_frame_every``-th frame and only around the last
faces in between (``RegionDetector``: 4-6 times less work at 720p, the same steadiness).

``run_detection`` ties a detector and a ``FaceTracker`` over an iterable of frames (streaming:
only the frames awaiting finalisation are held); ``fixed_box_track`` is the reference's
``--box`` (no detection).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from ..errors import InputError
from ..types import Box, FaceFrame, Frame
from .detectors import FULL_FRAME_EVERY, FaceDetector, RegionDetector
from .track import FaceTracker

__all__ = ["fixed_box_track", "run_detection"]


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
    if detect_every < 1:
        raise InputError(f"detect_every must be >= 1; got {detect_every}.")
    if full_frame_every > 1 and hasattr(detector, "max_side") and not isinstance(detector, RegionDetector):
        detector = RegionDetector(detector, full_frame_every)
    waiting: deque[Frame] = deque()
    for i, frame in enumerate(frames):
        if tuple(frame.shape[:2]) != tracker.frame_size:
            raise InputError(
                f"Frame {i} is {frame.shape[1]}x{frame.shape[0]} but the tracker was made for "
                f"{tracker.frame_size[1]}x{tracker.frame_size[0]}; all frames must have one size."
            )
        waiting.append(frame)
        detections = detector.detect(frame) if i % detect_every == 0 else None
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
