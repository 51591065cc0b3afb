"""Steady face boxes: still on a still head, without lag on a moving one. Streaming.

The reference averages each box with the next four (``smooth_boxes_reference``). On a still
head that leaves the detector's noise at about half its size (the box still shivers by a pixel
every few frames), and on a moving head the mean of the next five positions runs two frames
*ahead* of the face: 30 px at 15 px a frame, enough to put the new mouth beside the real one.

``steady`` smoothing (``SteadySmoother``) instead fits a straight line, per coordinate, through
the boxes of the ``past`` frames before and the ``lookahead`` frames after each frame (weights
falling linearly with the distance) and takes the line's value at the frame:

- a still head: the line is flat and averages 11 detections (noise to about a third);
- a head moving at a constant speed, however fast: the line follows it exactly, no lag, no lead;
- a sudden start or stop (the line would round the corner): where the fit and the frame's own
  detection disagree by more than ``follow_from`` times the detector's noise, the box is pulled
  towards the detection, fully at ``follow_full`` times. The noise is measured in the same
  window, robustly (the median of the second differences, which a straight motion does not
  change and one corner cannot move), with a floor of ``noise_floor`` px: the detector's
  shiver stays below the threshold on large and small faces alike, a missed corner does not.
- the box is integer: an edge moves to a new pixel only when the fit is more than half a pixel
  plus ``hysteresis`` away from the current one, so sub-pixel noise cannot flip it back and forth.

Coordinates are fitted as centre and size (x, y, width, height): a moving head moves the centre
and rarely the size, so a corner shows in the centre only. The tracker holds at most
``lookahead`` frames back (the reference holds 4). ``bench/quality/run_quality.py`` measures both
smoothings on still, slowly moving and fast-turning clips, and sweeps these parameters; the
defaults are the ones it picked (still head: 0.045 px frame-to-frame jitter against the
reference's 0.30; fast turn at 15 px a frame: at most 4.9 px off against 31).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ..types import Smoothing

__all__ = ["Smoothing", "SteadyParams", "SteadySmoother", "smooth_boxes_reference", "smooth_boxes_steady"]


F64 = npt.NDArray[np.float64]
IntBox = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SteadyParams:
    """The knobs of ``steady`` smoothing (defaults measured by ``bench/quality``)."""

    past: int = 6
    """Frames before the current one in the line fit."""
    lookahead: int = 4
    """Frames after the current one in the line fit (= frames the tracker waits for)."""
    follow_from: float = 3.0
    """Fit-vs-detection gap, in units of the detector's noise, where the box starts following
    the detection instead of the fit."""
    follow_full: float = 6.0
    """Gap (noise units) at which the box is the detection itself."""
    noise_floor: float = 1.0
    """Lowest noise estimate, px (integer detections often repeat exactly)."""
    hysteresis: float = 0.5
    """Pixels beyond half a pixel an edge's estimate must move before the integer edge moves."""

    def check(self) -> SteadyParams:
        if self.past < 0 or self.lookahead < 0:
            raise InputError(f"steady smoothing needs past >= 0 and lookahead >= 0; got {self.past}, {self.lookahead}.")
        if not 0.0 <= self.follow_from < self.follow_full:
            raise InputError(
                f"steady smoothing needs 0 <= follow_from < follow_full; got {self.follow_from}, {self.follow_full}."
            )
        if self.noise_floor <= 0.0:
            raise InputError(f"steady smoothing needs noise_floor > 0; got {self.noise_floor}.")
        if self.hysteresis < 0.0:
            raise InputError(f"steady smoothing needs hysteresis >= 0; got {self.hysteresis}.")
        return self


def _centre_size(box: npt.ArrayLike) -> F64:
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64)
    return np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1])


def _edges(cs: F64) -> F64:
    cx, cy, w, h = cs
    return np.array([cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0])


_MAD_TO_SIGMA = 1.4826 / np.sqrt(6.0)
"""Median |second difference| -> noise sigma: a second difference of white noise has variance 6 sigma²."""


def _noise(values: F64, floor: float) -> F64:
    """Robust per-coordinate noise of the samples ``values`` (n, k), at least ``floor``."""
    if len(values) < 3:
        return np.full(values.shape[1], floor)
    second = np.abs(np.diff(values, n=2, axis=0))
    return np.maximum(np.median(second, axis=0) * _MAD_TO_SIGMA, floor)


def _line_fit_at(offsets: F64, values: F64, radius: int) -> F64:
    """The value at offset 0 of the weighted least-squares line through (offsets, values (n, k))."""
    if len(offsets) == 1:
        return values[0]
    weights = 1.0 - np.abs(offsets) / (radius + 1.0)
    total = weights.sum()
    t_mean = (weights * offsets).sum() / total
    v_mean = (weights[:, None] * values).sum(axis=0) / total
    spread = (weights * (offsets - t_mean) ** 2).sum()
    slope = (weights[:, None] * (offsets - t_mean)[:, None] * (values - v_mean)).sum(axis=0) / spread
    return v_mean - slope * t_mean


class SteadySmoother:
    """``steady`` smoothing of one run of boxes (consecutive frames with a face), streaming.

    ``push(x1, y1, x2, y2)`` adds the next frame's box and returns the boxes that became final
    (int64 x1, y1, x2, y2, in frame order); ``finish()`` ends the run and returns the rest. Over
    a run, exactly one box comes out per box pushed. ``frame_size`` (height, width) clips them.
    """

    def __init__(self, params: SteadyParams | None = None, frame_size: tuple[int, int] | None = None) -> None:
        self.params = (params or SteadyParams()).check()
        self.frame_size = frame_size
        self._window: deque[tuple[int, F64]] = deque()
        self._pushed = 0
        self._done = 0
        self._held: F64 | None = None

    @property
    def pending(self) -> int:
        return self._pushed - self._done

    def push(self, box: npt.ArrayLike) -> list[IntBox]:
        self._window.append((self._pushed, _centre_size(box)))
        self._pushed += 1
        out: list[IntBox] = []
        while self._pushed - self._done > self.params.lookahead:
            out.append(self._final(self._done))
        return out

    def finish(self) -> list[IntBox]:
        out = [self._final(self._done) for _ in range(self.pending)]
        self._window.clear()
        self._pushed = self._done = 0
        self._held = None
        return out

    def _final(self, index: int) -> IntBox:
        p = self.params
        while self._window and self._window[0][0] < index - p.past:
            self._window.popleft()
        offsets = np.array([i - index for i, _ in self._window], dtype=np.float64)
        values = np.stack([cs for _, cs in self._window])
        raw = next(cs for i, cs in self._window if i == index)
        fit = _line_fit_at(offsets, values, max(p.past, p.lookahead))
        self._done += 1
        return self._quantise(_edges(self._follow(fit, raw, _noise(values, p.noise_floor))))

    def _follow(self, fit: F64, raw: F64, noise: F64) -> F64:
        """Pull the fit towards the frame's detection where they disagree beyond the noise."""
        p = self.params
        gap = np.abs(fit - raw) / noise
        pull = np.clip((gap - p.follow_from) / (p.follow_full - p.follow_from), 0.0, 1.0)
        return fit + (raw - fit) * pull

    def _quantise(self, edges: F64) -> IntBox:
        """Integer edges with hysteresis, clipped to the frame and never empty."""
        if self.frame_size is not None:
            height, width = self.frame_size
            edges = np.clip(edges, 0.0, [width, height, width, height])
        if self._held is None:
            held = np.rint(edges)
        else:
            held = self._held.copy()
            moved = np.abs(edges - held) > 0.5 + self.params.hysteresis
            held[moved] = np.rint(edges[moved])
        self._held = held
        x1, y1, x2, y2 = (int(v) for v in held)
        if self.frame_size is not None:
            height, width = self.frame_size
            x1, y1 = min(x1, width - 1), min(y1, height - 1)
        x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
        return np.array([x1, y1, x2, y2], dtype=np.int64)


def smooth_boxes_steady(
    boxes: npt.ArrayLike, params: SteadyParams | None = None, frame_size: tuple[int, int] | None = None
) -> IntBox:
    """``steady`` smoothing of a whole run of boxes (N, 4) x1, y1, x2, y2 at once: the same
    values the streaming ``SteadySmoother`` gives, for tests and offline use."""
    rows = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    smoother = SteadySmoother(params, frame_size)
    out: list[IntBox] = []
    for row in rows:
        out += smoother.push(row)
    out += smoother.finish()
    return np.stack(out) if out else np.zeros((0, 4), dtype=np.int64)


def smooth_boxes_reference(boxes: np.ndarray, T: int = 5) -> np.ndarray:
    """The reference's ``get_smoothened_boxes``, verbatim: in place on an int (N, 4) array.

    Kept as the definition the streaming tracker is tested against. Its quirks are part of the
    contract: the tail windows include already-smoothed rows, the int assignment truncates, and
    for N < T the slice ``boxes[N - T:]`` starts at ``max(0, 2N - T)``.
    """
    for i in range(len(boxes)):
        if i + T > len(boxes):
            window = boxes[len(boxes) - T :]
        else:
            window = boxes[i : i + T]
        boxes[i] = np.mean(window, axis=0)
    return boxes
