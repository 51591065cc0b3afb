"""The whole mouth (issue #11, part 6): in the default mode the mask is 1 over the lips and the
jaw's travel down to the chin, with a plain box and with landmarks, the soft edge lies outside
that core, and in the output the mouth core shows what the reference paste shows there (the
generated face, not a ghost of the original lips). Figures on real clips: bench/quality."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from lipsync.composite import CORE_COLUMNS, CORE_ROWS, mouth_mask, paste_mouth, paste_reference
from lipsync.types import Box, Detection, Waveform

ROWS, COLUMNS = (0.6, 0.95), (0.25, 0.75)
"""The region the issue measures: rows 0.6-0.95 of the box height, the central half of its width."""


def core_slices(height: int, width: int) -> tuple[slice, slice]:
    """Every pixel row/column of the box that the measured region touches."""
    return (slice(int(np.floor(ROWS[0] * height)), int(np.ceil(ROWS[1] * height))),
            slice(int(np.floor(COLUMNS[0] * width)), int(np.ceil(COLUMNS[1] * width))))


def face_marks(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Plausible landmarks in box coordinates (SCRFD order), as detectors place them: eyes at
    ~0.3, nose tip 0.45-0.57, mouth corners 0.62-0.72 of the height; a head turned by up to
    ~10 % of the width."""
    turn = rng.uniform(-0.1, 0.1) * width
    cx = width / 2 + turn
    eye_y, nose_y, mouth_y = (rng.uniform(*r) * height for r in ((0.27, 0.35), (0.45, 0.57), (0.62, 0.72)))
    half_eye, half_mouth = rng.uniform(0.16, 0.22) * width, rng.uniform(0.15, 0.24) * width
    return np.array([[cx - half_eye, eye_y], [cx + half_eye, eye_y], [cx, nose_y],
                     [cx - half_mouth, mouth_y + rng.normal(0, 1)], [cx + half_mouth, mouth_y + rng.normal(0, 1)]],
                    np.float32)


def test_the_core_constants_cover_the_measured_region() -> None:
    assert CORE_ROWS[0] <= ROWS[0] and CORE_ROWS[1] >= ROWS[1]
    assert CORE_COLUMNS[0] <= COLUMNS[0] and CORE_COLUMNS[1] >= COLUMNS[1]


@pytest.mark.parametrize("kind", ["box", "landmarks"])
@pytest.mark.parametrize("feather", [0.0, 0.05, 0.15, 0.3, 0.5])
def test_the_mask_is_one_over_the_mouth_and_chin(kind: str, feather: float) -> None:
    rng = np.random.default_rng(int(feather * 100))
    for height, width in [(248, 197), (120, 93), (64, 52), (181, 160), (300, 310), (40, 33)]:
        marks = face_marks(height, width, rng) if kind == "landmarks" else None
        mask = mouth_mask(height, width, marks, feather)
        rows, cols = core_slices(height, width)
        assert mask[rows, cols].min() >= 0.99, (height, width, mask[rows, cols].min())
        top = min(marks[2, 1], (ROWS[0] - 0.03) * height - 1) if marks is not None else height / 2
        assert mask[: int(np.floor(top))].max() == 0.0, "the upper face must stay untouched"
        assert mask[:, 0].max() == 0.0 and mask[:, -1].max() == 0.0 and mask[-1].max() == 0.0, "edge inside the box"


def test_the_soft_edge_lies_outside_the_core() -> None:
    """Rows and columns fully inside the core are exactly 1; the weight only falls outside,
    monotonically away from it (no dip that would let the original show through)."""
    height, width = 200, 160
    mask = mouth_mask(height, width, None, 0.15)
    rows, cols = core_slices(height, width)
    assert (mask[rows, cols] == 1.0).all()
    mid_row = mask[int(0.8 * height)]
    left, right = mid_row[: cols.start + 1], mid_row[cols.stop - 1 :]
    assert (np.diff(left) >= 0).all() and (np.diff(right) <= 0).all()
    centre = mask[:, width // 2]
    assert (np.diff(centre[: rows.start + 1]) >= 0).all() and (np.diff(centre[rows.stop - 1 :]) <= 0).all()


def test_the_mouth_corners_are_inside_the_core_even_when_the_head_turns() -> None:
    height, width = 200, 160
    marks = np.array([[40, 60], [90, 60], [60, 100], [18, 135], [76, 135]], np.float32)  # turned to its right
    mask = mouth_mask(height, width, marks)
    for x, y in marks[3:]:
        assert mask[int(y), int(x)] == 1.0
        assert mask[int(y), int(x) + 3] == 1.0


def _textured(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 1.5)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


@pytest.mark.parametrize("landmarks", [False, True])
def test_the_mouth_core_shows_what_the_reference_paste_shows(landmarks: bool) -> None:
    """Same frame, box and generated face: the default's mouth core correlates >= 0.95 with the
    reference's hard paste there (they differ only by the resampler), and far less with the
    original (the old lips do not show through)."""
    frame = _textured(240, 320, 0)
    box = Box(top=30, bottom=222, left=80, right=240)
    pred = np.random.default_rng(1).random((3, 96, 96), dtype=np.float32)
    pred = cv2.GaussianBlur(pred.transpose(1, 2, 0), (0, 0), 1.0).transpose(2, 0, 1).copy()
    marks = face_marks(box.height, box.width, np.random.default_rng(2)) + np.float32([box.left, box.top])
    ours, _ = paste_mouth(frame, pred, box, marks if landmarks else None)
    reference = paste_reference(frame, (pred.transpose(1, 2, 0) * 255).astype(np.uint8), box)
    rows, cols = core_slices(box.height, box.width)
    region = (slice(box.top + rows.start, box.top + rows.stop), slice(box.left + cols.start, box.left + cols.stop))
    assert _correlation(ours[region], reference[region]) >= 0.95
    assert abs(_correlation(ours[region], frame[region])) < 0.3


# --- through the pipeline --------------------------------------------------------------------


class _Still:
    """One face, the same detection in every frame (so both runs track the same boxes)."""

    name = "still"

    def detect(self, frame: np.ndarray) -> list[Detection]:
        marks = np.array([[120, 80], [200, 80], [160, 120], [128, 150], [192, 150]], np.float32)
        return [Detection(80.0, 30.0, 240.0, 212.0, 0.99, marks)]


def test_the_output_mouth_core_matches_the_reference_mode(tmp_path: Path, generator) -> None:
    """``--mode reference`` and the default on the same frames, with the fixture's network: the
    mouth cores correlate >= 0.95 frame by frame; the default leaves the upper face as it was."""
    from lipsync.engine.lipsync import LipSyncOptions, lipsync_video
    from lipsync.media.video import VideoWriter, iter_frames

    frames = [_textured(240, 320, i) for i in range(6)]
    video = tmp_path / "in.mkv"
    with VideoWriter(video, Fraction(25), lossless=True) as writer:
        for f in frames:
            writer.write(f)
    t = np.arange(6 * 640) / 16000
    voice = Waveform((0.3 * np.sin(2 * np.pi * 180 * t) * np.sin(2 * np.pi * 3 * t))[None].astype(np.float32), 16000)
    outputs = {}
    for mode in ("mouth", "reference"):
        out = tmp_path / f"{mode}.mkv"
        lipsync_video(video, voice, out, generator, LipSyncOptions.of(lossless=True, mode=mode), detector=_Still())
        outputs[mode] = list(iter_frames(out))
    box = Box(top=30, bottom=222, left=80, right=240)  # the detection with the bottom pad (10 px)
    rows, cols = core_slices(box.height, box.width)
    region = (slice(box.top + rows.start, box.top + rows.stop), slice(box.left + cols.start, box.left + cols.stop))
    for ours, reference, original in zip(outputs["mouth"], outputs["reference"], frames):
        assert _correlation(ours[region], reference[region]) >= 0.95
        upper = box.top + box.height // 2  # the box middle, below the nose tip (y 120) here
        assert np.array_equal(ours[:upper], original[:upper])
