"""Per-frame detections -> one ``FaceFrame`` per frame, streaming with a bounded lookahead.

The reference (Wav2Lip's inference.py) pads each detected box, then smooths the boxes of the
whole clip with a 5-frame moving mean (``lipsync.faces.smooth.smooth_boxes_reference``). This module reproduces that
exactly, but frame by frame, so a long video never has to be held in memory:

1. choice: one person is picked (the largest face at the start, the index-th from the left, or
   the face at a point) and followed by ``lipsync.faces.speaker.SpeakerLock``; their box is
   padded and clipped as in the reference (frames where that person is not found have no face);
2. skipped frames (the caller detects only every k-th frame and pushes None in between) are
   filled by linear interpolation between the sampled frames around them;
3. smoothing over each run of frames with a box (a frame without a face ends the run: a missing
   box is never averaged in). A frame is final once ``smooth_window - 1`` later frames are known;
   ``smoothing="steady"`` replaces the reference's mean by ``lipsync.faces.smooth`` (steadier on
   a still head, no lag on a moving one; final after ``SteadyParams.lookahead`` later frames);
4. the missing-face policy fills frames without a face (passthrough / hold / interpolate / fail).

Every pushed frame yields exactly one FaceFrame, in order: dropping one would desync the audio.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..errors import FaceNotFoundError, InputError
from ..types import Box, Detection, FaceChoice, FaceFrame, MissingFacePolicy, choices
from .smooth import Smoothing, SteadyParams, SteadySmoother, smooth_boxes_reference
from .speaker import SpeakerLock, SpeakerParams, SpeakerReport

__all__ = ["FaceTracker"]

IntBox = npt.NDArray[np.int64]
"""x1, y1, x2, y2 as int64, the reference's box array row."""

Landmarks = npt.NDArray[np.float32]


@dataclass
class _Item:
    """One frame between the stages: its box (None: no face) and landmarks."""

    index: int
    box: IntBox | None
    landmarks: Landmarks | None = None
    detected: bool = True


def _lerp_item(index: int, a: _Item, b: _Item, detected: bool) -> _Item:
    """The item at ``index`` on the line between items ``a`` and ``b`` (both with boxes)."""
    assert a.box is not None and b.box is not None
    t = (index - a.index) / float(b.index - a.index)
    box = np.rint(a.box + (b.box - a.box) * t).astype(np.int64)
    marks = None
    if a.landmarks is not None and b.landmarks is not None:
        marks = (a.landmarks + (b.landmarks - a.landmarks) * np.float32(t)).astype(np.float32)
    return _Item(index, box, marks, detected)


def _copy_item(index: int, src: _Item, detected: bool) -> _Item:
    """``src``'s box and landmarks at another frame (hold)."""
    return _Item(index, src.box, src.landmarks, detected)


def _face_frame(item: _Item) -> FaceFrame:
    if item.box is None:
        return FaceFrame(box=None, landmarks=None, detected=False)
    x1, y1, x2, y2 = (int(v) for v in item.box)
    return FaceFrame(Box(top=y1, bottom=y2, left=x1, right=x2), item.landmarks, item.detected)


class FaceTracker:
    """Streaming tracker: ``push`` one frame's detections at a time, ``flush`` at the end.

    ``push(None)`` means the frame was not run through the detector (detect every k-th frame).
    Each call returns the FaceFrames that became final, in frame order; over the whole stream
    exactly one per pushed frame. The lookahead is bounded by ``smooth_window - 1`` frames
    (``steady.lookahead`` with ``smoothing="steady"``), plus up to ``max_gap`` frames while an
    ``interpolate`` gap is open, plus the skipped frames since the last detection.

    ``smoothing`` is ``reference`` (the original's 5-frame mean, exactly) by default here, so the
    tracker alone reproduces the reference; the pipeline's default is ``steady``. With either,
    ``smooth_window=1`` turns smoothing off.

    ``choice``, ``face_index`` and ``point`` (x, y in pixels of the first frame, with
    ``choice="point"``) pick the person; ``speaker`` holds the gates that keep following them
    (``lipsync.faces.speaker``). With one face per frame every face is followed, as the reference.
    """

    def __init__(
        self,
        frame_size: tuple[int, int],
        *,
        pads: Sequence[int] = (0, 10, 0, 0),
        smooth_window: int = 5,
        choice: FaceChoice = "largest",
        face_index: int = 0,
        missing: MissingFacePolicy = "passthrough",
        max_gap: int = 25,
        smoothing: Smoothing = "reference",
        steady: SteadyParams | None = None,
        point: tuple[float, float] = (0.0, 0.0),
        speaker: SpeakerParams | None = None,
    ) -> None:
        _check_options(frame_size, pads, smooth_window, choice, face_index, missing, max_gap)
        if smoothing not in choices(Smoothing):
            raise InputError(f"Unknown smoothing {smoothing!r}; choose one of: {', '.join(choices(Smoothing))}.")
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.pads = tuple(int(p) for p in pads)
        self.smooth_window = int(smooth_window)
        self.choice: FaceChoice = choice
        self.face_index = int(face_index)
        self.missing: MissingFacePolicy = missing
        self.max_gap = int(max_gap)
        self._pushed = 0
        self._emitted = 0
        # stage 1 (choice, skipped frames)
        self._lock = SpeakerLock(choice, self.face_index, point, speaker)
        self._finished_report: SpeakerReport | None = None
        self._prev_sample: _Item | None = None
        self._skipped: list[int] = []
        # stage 2 (smoothing of the current run)
        self._run: deque[_Item] = deque()
        self._history: deque[IntBox] = deque(maxlen=max(1, self.smooth_window))
        self.smoothing: Smoothing = smoothing
        self._steady = SteadySmoother(steady, self.frame_size) if smoothing == "steady" else None
        # stage 3 (missing-face policy)
        self._last: _Item | None = None
        self._gap: list[int] = []
        self._gap_overflow = False

    @property
    def pending(self) -> int:
        """Frames pushed whose FaceFrame has not been returned yet."""
        return self._pushed - self._emitted

    @property
    def speaker_report(self) -> SpeakerReport:
        """Who was followed (``lipsync.faces.speaker.SpeakerReport``): so far, or, after ``flush``,
        the stream that ended (until the next one shows a face)."""
        current = self._lock.report
        return self._finished_report if self._finished_report is not None and not current.people else current

    def push(self, detections: list[Detection] | None) -> list[FaceFrame]:
        """Add the next frame's detections (None: not detected); return the newly final frames."""
        index = self._pushed
        self._pushed += 1
        if detections is None:
            self._skipped.append(index)
            return []
        box, marks = self._choose(index, detections)
        if box is None and self.missing == "fail":
            raise _not_found(index)
        current = _Item(index, box, marks, True)
        out: list[FaceFrame] = []
        for item in self._resolve_skipped(current):
            out += self._smooth(item)
        out += self._smooth(current)
        self._prev_sample = current
        self._emitted += len(out)
        return out

    def flush(self) -> list[FaceFrame]:
        """End of the stream: finalise every pending frame. The tracker starts afresh after."""
        out: list[FaceFrame] = []
        for item in self._resolve_skipped(None):
            out += self._smooth(item)
        out += self._end_run()
        if self._gap:
            out += [self._held(i) for i in self._gap]
            self._gap.clear()
        self._emitted += len(out)
        self._prev_sample = None
        self._finished_report = self._lock.report
        self._lock.reset()
        self._last = None
        self._gap_overflow = False
        return out

    # stage 1 -----------------------------------------------------------------------------

    def _pad(self, det: Detection) -> IntBox | None:
        """The reference's padding: clip at 0, truncate to int, pad, clip to the frame."""
        height, width = self.frame_size
        top, bottom, left, right = self.pads
        x1, y1, x2, y2 = (int(v) for v in np.clip([det.x1, det.y1, det.x2, det.y2], 0, None))
        y1 = max(0, y1 - top)
        y2 = min(height, y2 + bottom)
        x1 = max(0, x1 - left)
        x2 = min(width, x2 + right)
        if x2 <= x1 or y2 <= y1:
            return None
        return np.array([x1, y1, x2, y2], dtype=np.int64)

    def _choose(self, index: int, detections: Sequence[Detection]) -> tuple[IntBox | None, Landmarks | None]:
        """The chosen person's face in this frame, padded; (None, None) when it is not there."""
        padded: list[tuple[Detection, IntBox]] = []
        for det in detections:
            if not np.isfinite([det.x1, det.y1, det.x2, det.y2]).all():
                continue
            box = self._pad(det)
            if box is not None:  # a face entirely outside the frame is no face
                padded.append((det, box))
        found = self._lock.pick(index, [det for det, _ in padded])
        if found is None:
            return None, None
        det, box = padded[found]
        marks = None
        if det.landmarks is not None:
            marks = np.asarray(det.landmarks, np.float32).reshape(5, 2)
        return box, marks

    def _resolve_skipped(self, following: _Item | None) -> list[_Item]:
        """Fill the frames skipped since the last sample, once the next one (or the end) is known.

        Between two samples with a face: linear interpolation. Before the first sample: the next
        sample's box; after the last one at the end of the stream: the last box (hold). Next to
        a sample without a face: no face, so the missing-face policy decides.
        """
        before = self._prev_sample
        items: list[_Item] = []
        for index in self._skipped:
            if before is not None and before.box is not None:
                if following is not None and following.box is not None:
                    items.append(_lerp_item(index, before, following, True))
                elif following is None:
                    items.append(_copy_item(index, before, True))
                else:
                    items.append(_Item(index, None))
            elif before is None and following is not None and following.box is not None:
                items.append(_copy_item(index, following, True))
            else:
                items.append(_Item(index, None))
        self._skipped.clear()
        return items

    # stage 2 -----------------------------------------------------------------------------

    def _smooth(self, item: _Item) -> list[FaceFrame]:
        """Feed one frame to the moving mean; return the frames that became final downstream."""
        if item.box is None:
            return self._end_run() + self._fill(item)
        window = self.smooth_window
        if window <= 1:
            return self._fill(item)
        if self._steady is not None:
            self._run.append(item)
            return self._steady_final(self._steady.push(item.box))
        self._run.append(item)
        if len(self._run) < window:
            return []
        # Rows i..i+T-1 are all still raw: the reference's window for a non-tail row.
        stacked = np.stack([it.box for it in self._run if it.box is not None])
        first = self._run.popleft()
        smoothed = np.empty(4, dtype=np.int64)
        smoothed[:] = np.mean(stacked, axis=0)
        self._history.append(smoothed)
        return self._fill(_Item(first.index, smoothed, first.landmarks, first.detected))

    def _end_run(self) -> list[FaceFrame]:
        """The run of boxes ended: smooth its last rows with the reference's tail windows."""
        if self._steady is not None:
            return self._steady_final(self._steady.finish())
        if not self._run:
            self._history.clear()
            return []
        window = self.smooth_window
        raw = np.stack([it.box for it in self._run if it.box is not None])
        m = len(raw)
        if not self._history:  # the whole run is shorter than the window
            tail = smooth_boxes_reference(raw, window)
        else:  # window = the last T rows of the run: T - m smoothed rows, then m raw rows
            arr = np.concatenate([np.stack(list(self._history)[-(window - m) :]), raw])
            for k in range(m):
                arr[window - m + k] = np.mean(arr, axis=0)
            tail = arr[window - m :]
        out: list[FaceFrame] = []
        for it, box in zip(list(self._run), tail):
            out += self._fill(_Item(it.index, box.copy(), it.landmarks, it.detected))
        self._run.clear()
        self._history.clear()
        return out

    def _steady_final(self, boxes: list[IntBox]) -> list[FaceFrame]:
        """Pair the steady smoother's final boxes with the oldest waiting frames of the run."""
        out: list[FaceFrame] = []
        for box in boxes:
            first = self._run.popleft()
            out += self._fill(_Item(first.index, box, first.landmarks, first.detected))
        return out

    # stage 3 -----------------------------------------------------------------------------

    def _fill(self, item: _Item) -> list[FaceFrame]:
        """Apply the missing-face policy to a final frame (buffering an interpolate gap)."""
        if item.box is not None:
            out = self._close_gap(item)
            out.append(_face_frame(item))
            self._last = item
            return out
        if self.missing == "fail":
            raise _not_found(item.index)
        if self.missing == "interpolate" and not self._gap_overflow:
            self._gap.append(item.index)
            if len(self._gap) <= self.max_gap:
                return []
            self._gap_overflow = True  # too long to interpolate: hold, now and until a face
            out = [self._held(i) for i in self._gap]
            self._gap.clear()
            return out
        if self.missing == "passthrough":
            return [FaceFrame(box=None, landmarks=None, detected=False)]
        return [self._held(item.index)]

    def _held(self, index: int) -> FaceFrame:
        """The last box, marked not detected; no box before the first face."""
        if self._last is None:
            return FaceFrame(box=None, landmarks=None, detected=False)
        return _face_frame(_copy_item(index, self._last, False))

    def _close_gap(self, after: _Item) -> list[FaceFrame]:
        """A face again: interpolate the open gap from the last box (at the start: hold this)."""
        self._gap_overflow = False
        if not self._gap:
            return []
        if self._last is None:
            out = [_face_frame(_copy_item(i, after, False)) for i in self._gap]
        else:
            out = [_face_frame(_lerp_item(i, self._last, after, False)) for i in self._gap]
        self._gap.clear()
        return out


def _not_found(index: int) -> FaceNotFoundError:
    return FaceNotFoundError(
        f"No face found in frame {index} (missing-face policy 'fail'); choose the passthrough, "
        "hold or interpolate policy, or give a fixed face box."
    )


def _check_options(
    frame_size: tuple[int, int],
    pads: Sequence[int],
    smooth_window: int,
    choice: str,
    face_index: int,
    missing: str,
    max_gap: int,
) -> None:
    """Reject option values early, with the allowed values in the message."""
    if len(frame_size) != 2 or min(frame_size) <= 0:
        raise InputError(f"frame_size must be (height, width) > 0; got {tuple(frame_size)}.")
    if len(pads) != 4:
        raise InputError(f"pads must be 4 numbers (top, bottom, left, right); got {tuple(pads)}.")
    if smooth_window < 1:
        raise InputError(f"smooth_window must be >= 1 (1 = no smoothing); got {smooth_window}.")
    if choice not in choices(FaceChoice):
        allowed = ", ".join(choices(FaceChoice))
        raise InputError(f"Unknown face choice {choice!r}; choose one of: {allowed}.")
    if face_index < 0:
        raise InputError(f"face_index must be >= 0; got {face_index}.")
    if missing not in choices(MissingFacePolicy):
        allowed = ", ".join(choices(MissingFacePolicy))
        raise InputError(f"Unknown missing-face policy {missing!r}; choose one of: {allowed}.")
    if max_gap < 0:
        raise InputError(f"max_gap must be >= 0; got {max_gap}.")
