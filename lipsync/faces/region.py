"""Face search in regions between whole-frame searches (``RegionDetector``): the whole frame every
``FULL_FRAME_EVERY``-th frame, the regions around the faces found last in between, and on the
``CARRIED_FRAMES`` frames after each search the faces carried by the shift of the picture around
them (phase correlation) instead of a search. Wraps a ``FaceDetector`` that downscales the frame
(``detectors._prepare``): at 720p detection + tracking costs about a fifth of whole-frame searches
on every frame, with the same steadiness (``bench/bench_detect.py``, ``bench/quality``)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import cv2
import numpy as np

from ..errors import InputError
from ..types import Detection, Frame
from .detectors import DETECT_MAX_SIDE, FaceDetector

__all__ = ["CARRIED_FRAMES", "FULL_FRAME_EVERY", "RegionDetector"]


FULL_FRAME_EVERY = 20
"""``RegionDetector``'s default: the whole frame is searched every 20th frame (0.8 s at 25 fps),
so a face that enters the picture beside the ones followed is found within that; in between only
around the faces (a frame where none of them is found is searched whole at once). At 720p a
whole-frame search costs as much as five region searches; every 10th frame it took half of the
detection's CPU."""

REGION_MARGIN = 0.35
"""Around each face, a region this many face widths (heights) wider (taller) on every side is
searched: a head can move a third of its width between two frames and still be found there
(else the whole frame is searched)."""

CARRIED_FRAMES = 2
"""``RegionDetector``'s default: after each search, this many frames are not searched; their faces
are the last ones moved by how the picture around each moved since the frame before (phase
correlation of a small grey patch: ~1.4 ms instead of a ~9 ms region search at 720p). Measured
by ``bench/quality`` (fast turn at 15 px a frame, max error): 6.6 px with none carried, 3.9 px
with 1, 4.1 px with 2; the moving and still heads within 0.1 px of each other."""

CARRY_PATCH = 128
"""Side (pixels) of the grey patch around a face whose shift carries the face to the next frame."""

CARRY_MATCH = 0.3
"""Least phase-correlation peak (0..1) for a carried face: below it the patch changed too much
(the face turned away, left, was covered) and the frame is searched instead. A face shifted by
15 px peaks at ~0.9."""

REGION_GRID = 32
"""Regions start and end on multiples of this (pixels at the scale they are searched at): the
coarsest stride of the YuNet family's feature maps."""

def _iou(a: Detection, b: Detection) -> float:
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a.area + b.area - inter)


class RegionDetector:
    """A detector that searches the whole frame only every ``full_every``-th call, and in between
    only the regions around the faces it found last (``margin`` around each).

    Why: detection costs in proportion to the pixels searched; a face region is 3-4 times
    smaller than the frame (720p detected at 640 px). Each region is cut from the frame and downscaled exactly as a whole-frame
    detection downscales it (``max_side``; only the region is resampled, not the frame), so a
    face is seen at the same scale and on the same grid of the network's anchors either way (at
    720p they may still differ by a pixel or two, so the faces a whole-frame search finds are
    detected again in their regions: every box comes from a region search). A frame where no
    face is found in the regions is searched whole at once. The regions also cover the faces the
    last two whole-frame searches found where no face is now: someone who turned away or stepped
    out for a moment is found again when they come back, not at the next whole search.
    After each search (whole or regions), the next ``carried`` frames are not searched: their
    faces are the last ones moved by the shift of the picture around each face from the frame
    before (``_Carry``), which costs a sixth of a region search and follows a move exactly where
    interpolating between searches would cut its corners (a lag); the searches in between catch
    turns, changes of size and drift. A face whose picture changed too much is searched for
    instead, and nothing is carried while a face the recent whole searches saw is missing (it may
    be back in the next frame). Which frames are carried depends only on the frames since the last
    scheduled whole-frame search, so a frame range started there detects exactly as a whole run.
    ``detector``: a backend with a ``max_side`` (yuface, yunet); the frames must keep one size.
    """

    def __init__(self, detector: FaceDetector, full_every: int = FULL_FRAME_EVERY,
                 margin: float = REGION_MARGIN, carried: int = CARRIED_FRAMES) -> None:
        if full_every < 1:
            raise InputError(f"full_every must be >= 1; got {full_every}.")
        if carried < 0:
            raise InputError(f"carried must be >= 0; got {carried}.")
        self.detector = detector
        self.name = detector.name
        self.full_every = int(full_every)
        self.margin = float(margin)
        self.max_side = int(getattr(detector, "max_side", DETECT_MAX_SIDE))
        self.carried = int(carried)
        self._calls = 0
        self._since_whole = 0
        self._carry: list[_Carry] = []
        self._last: list[Detection] = []
        self._whole: deque[list[Detection]] = deque(maxlen=2)
        self.whole_frames = 0
        """How many calls searched the whole frame (for measurements)."""
        self.region_pixels = 0
        """Pixels searched in regions so far, at the detector's scale (for measurements)."""
        self.carried_frames = 0
        """How many calls carried the last faces instead of searching (for measurements)."""

    def detect(self, frame: Frame, whole: bool | None = None) -> list[Detection]:
        """The faces in ``frame``; ``whole``: search the whole frame (True) or the regions (False,
        the whole frame when there are none or nothing is found there); None: every
        ``full_every``-th call searches the whole frame (counted from this detector's first call)."""
        count, self._calls = self._calls, self._calls + 1
        if whole is None:
            whole = count % self.full_every == 0
        self._since_whole = 0 if whole else self._since_whole + 1
        before = self._last
        found = self._search_or_carry(frame, whole)
        if not whole:
            self._whole = deque((_followed(faces, before, found) for faces in self._whole), maxlen=2)
        # Carried only while every face of the recent whole searches is here: else the next frame
        # is searched, where someone who stepped out may be back.
        carry_next = self.carried > 0 and (self._since_whole + 1) % (self.carried + 1) != 0 and not self._remembered()
        self._carry = [_Carry(frame, face) for face in found] if carry_next else []
        return found

    def _search_or_carry(self, frame: Frame, whole: bool) -> list[Detection]:
        if self._carry and not whole:
            moved = [carry.to(frame) for carry in self._carry]
            if all(face is not None for face in moved):
                self.carried_frames += 1
                self._last = [face for face in moved if face is not None]
                return self._last
        if self._last and not whole:
            found = self._in_regions(frame)
            if found:
                self._last = found
                return found
        self.whole_frames += 1
        self._last = self.detector.detect(frame)
        if whole:  # only the scheduled searches: what the regions remember depends on the frames alone
            self._whole.append(self._last)
        # The faces found are detected again in their regions, so every box comes from the same
        # kind of search (a region and the whole frame can differ by a pixel or two, which would
        # show as a jump every full_every frames).
        found = self._in_regions(frame) if self._last and self.full_every > 1 else []
        if found:
            self._last = found
        return self._last

    def _remembered(self) -> list[Detection]:
        return _remembered_faces(self._last, self._whole)

    def _in_regions(self, frame: Frame) -> list[Detection]:
        height, width = frame.shape[:2]
        scale = min(1.0, self.max_side / float(max(height, width)))
        found: list[Detection] = []
        for face in self._last + self._remembered():
            for moved in self._search(frame, face, scale):
                same = [o for o in found if _iou(moved, o) >= 0.5]  # seen from two overlapping regions
                if all(o.score < moved.score for o in same):
                    found = [o for o in found if o not in same] + [moved]
        return found

    def _search(self, frame: Frame, face: Detection, scale: float) -> list[Detection]:
        """The faces in the region around ``face``, cut from ``frame`` and searched at ``scale``
        (the whole-frame search's: ``_prepare``'s size for the whole frame, times this region's
        share of it, so the pixels are the ones that search would see)."""
        height, width = frame.shape[:2]
        small_w, small_h = max(1, round(width * scale)), max(1, round(height * scale))
        sx, sy = small_w / float(width), small_h / float(height)
        x1, y1, x2, y2 = face.x1 * sx, face.y1 * sy, face.x2 * sx, face.y2 * sy
        mx, my = (x2 - x1) * self.margin, (y2 - y1) * self.margin
        # On the detector's own grid (its coarsest stride): the face meets the network's
        # anchors where a whole-frame detection meets them, so both give the same box.
        g = REGION_GRID
        left, top = max(0, int(x1 - mx) // g * g), max(0, int(y1 - my) // g * g)
        right, bottom = min(small_w, -(-int(np.ceil(x2 + mx)) // g) * g), min(small_h, -(-int(np.ceil(y2 + my)) // g) * g)
        if right - left < 8 or bottom - top < 8:
            return []
        # The frame pixels under that part of the downscaled frame, downscaled alone (at 720p,
        # 1080p and 4K the factor is a whole number, and these are exactly that part's pixels).
        fl, ft = int(np.floor(left / sx)), int(np.floor(top / sy))
        fr, fb = min(width, int(np.ceil(right / sx))), min(height, int(np.ceil(bottom / sy)))
        region = frame[ft:fb, fl:fr]
        size = (max(1, round((fr - fl) * sx)), max(1, round((fb - ft) * sy)))
        if size != (fr - fl, fb - ft):
            region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
        self.region_pixels += size[0] * size[1]
        kx, ky = (fr - fl) / float(size[0]), (fb - ft) / float(size[1])  # region pixel -> frame pixels
        out = []
        for d in self.detector.detect(region):
            points = None
            if d.landmarks is not None:
                points = (d.landmarks * np.float32([kx, ky]) + np.float32([fl, ft])).astype(np.float32)
            out.append(Detection(d.x1 * kx + fl, d.y1 * ky + ft, d.x2 * kx + fl, d.y2 * ky + ft, d.score, points))
        return out


class _Carry:
    """A face carried to the next frame by the shift of the picture around it: a grey patch of
    ``CARRY_PATCH`` px around the face (its box and half its size on each side) is cut from this
    frame and, by ``to``, from the next at the same place; their phase correlation (OpenCV) is
    how far the face moved. Good for what moves in one frame (a head moves its box a few % of
    its size); the searches in between catch turns, scale and drift."""

    def __init__(self, frame: Frame, face: Detection) -> None:
        height, width = frame.shape[:2]
        w, h = face.x2 - face.x1, face.y2 - face.y1
        self.face = face
        self.left, self.top = max(0, int(face.x1 - w / 2)), max(0, int(face.y1 - h / 2))
        self.right, self.bottom = min(width, int(np.ceil(face.x2 + w / 2))), min(height, int(np.ceil(face.y2 + h / 2)))
        self.patch = self._patch(frame)

    def _patch(self, frame: Frame, dx: int = 0, dy: int = 0) -> np.ndarray | None:
        """The grey patch of the rectangle moved by (dx, dy) frame pixels; None when it is too
        small or the move takes it out of the frame."""
        left, top, right, bottom = self.left + dx, self.top + dy, self.right + dx, self.bottom + dy
        if right - left < 16 or bottom - top < 16 or min(left, top) < 0 or right > frame.shape[1] or bottom > frame.shape[0]:
            return None
        # Every step-th pixel first (at most 2x the patch's size is left to average down): a
        # large face's patch then costs no more than a small one's.
        step = max(1, min(right - left, bottom - top) // (2 * CARRY_PATCH))
        cut = cv2.cvtColor(frame[top:bottom:step, left:right:step], cv2.COLOR_RGB2GRAY)
        small = cv2.resize(cut, (CARRY_PATCH, CARRY_PATCH),
                           interpolation=cv2.INTER_AREA if min(cut.shape) >= CARRY_PATCH else cv2.INTER_LINEAR)
        return small.astype(np.float32)

    def _shift(self, after: np.ndarray | None) -> tuple[float, float, float]:
        """(dx, dy) in frame pixels from this patch to ``after``, and the correlation's peak."""
        if self.patch is None or after is None:
            return 0.0, 0.0, 0.0
        (dx, dy), peak = cv2.phaseCorrelate(self.patch, after, _hanning())
        return dx * (self.right - self.left) / CARRY_PATCH, dy * (self.bottom - self.top) / CARRY_PATCH, peak

    def to(self, frame: Frame) -> Detection | None:
        """The face in ``frame`` (the next frame), moved by the patch's shift; None when the
        patches do not match (peak below ``CARRY_MATCH``) or the face is too small to carry."""
        dx, dy, peak = self._shift(self._patch(frame))
        if not peak >= CARRY_MATCH:  # also NaN, from a flat patch
            return None
        # The window stays put while the picture moves under it, which shortens the estimate of
        # a large move (a 5 px move of a sharp-edged square read as 3.8): once more, from the
        # patch cut where the face now is, and the rest added.
        ix, iy = round(dx), round(dy)
        if (ix, iy) != (0, 0):
            rx, ry, again = self._shift(self._patch(frame, ix, iy))
            if again >= CARRY_MATCH:
                dx, dy = ix + rx, iy + ry
        d = self.face
        points = None if d.landmarks is None else (d.landmarks + np.float32([dx, dy])).astype(np.float32)
        return Detection(d.x1 + dx, d.y1 + dy, d.x2 + dx, d.y2 + dy, d.score, points)


_HANNING: list[np.ndarray] = []


def _hanning() -> np.ndarray:
    """The window phase correlation weighs the patch with (made once)."""
    if not _HANNING:
        _HANNING.append(cv2.createHanningWindow((CARRY_PATCH, CARRY_PATCH), cv2.CV_32F))
    return _HANNING[0]


def _followed(remembered: list[Detection], before: list[Detection], now: list[Detection]) -> list[Detection]:
    """The faces of a whole-frame search (``remembered``) moved along with the faces followed
    since: one that was found in the frame before (``before``) becomes the face of this frame
    (``now``) that overlaps that one most, or stays where it was last seen. So a head that moves
    away from where the last whole search saw it is not taken for a second, missing face."""
    out = []
    for face in remembered:
        seen = max(before, key=lambda b: _iou(face, b), default=None)
        if seen is None or _iou(face, seen) < 0.3:
            out.append(face)
            continue
        follow = max(now, key=lambda n: _iou(seen, n), default=None)
        out.append(follow if follow is not None and _iou(seen, follow) >= 0.3 else seen)
    return out


def _remembered_faces(last: list[Detection], whole: Iterable[list[Detection]]) -> list[Detection]:
    """Faces of recent whole-frame searches (``whole``) where none of ``last`` is now."""
    out: list[Detection] = []
    for face in (f for found in whole for f in found):
        if all(_iou(face, other) < 0.3 for other in (*last, *out)):
            out.append(face)
    return out
