"""Tests of lipsync.faces' streaming tracker: the reference's pads and smoothing, the choice of face, the
missing-face policies, detection every k-th frame, bounded buffering, run_detection and fixed boxes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from lipsync.errors import FaceNotFoundError, InputError
from lipsync.faces import (
    FaceTracker,
    fixed_box_track,
    run_detection,
    smooth_boxes_reference,
)
from lipsync.types import Box, Detection, FaceFrame

# --------------------------------------------------------------------------------------------
# tracker

H, W = 480, 640


def _det(x1: float, y1: float, x2: float, y2: float, *, lm: bool = False) -> Detection:
    marks = None
    if lm:
        marks = np.array([[x1, y1], [x2, y1], [(x1 + x2) / 2, (y1 + y2) / 2], [x1, y2], [x2, y2]],
                         np.float32)
    return Detection(float(x1), float(y1), float(x2), float(y2), 0.9, marks)


def _track(per_frame: list[list[Detection] | None], **options: object) -> list[FaceFrame]:
    tracker = FaceTracker((H, W), **options)  # type: ignore[arg-type]
    out: list[FaceFrame] = []
    for dets in per_frame:
        out += tracker.push(dets)
    out += tracker.flush()
    assert len(out) == len(per_frame), "exactly one FaceFrame per pushed frame"
    return out


def _xyxy(face: FaceFrame) -> list[int]:
    assert face.box is not None
    return [face.box.left, face.box.top, face.box.right, face.box.bottom]


def test_pads_and_clipping_follow_the_reference() -> None:
    dets = [[_det(-5.7, 3.2, 100.9, 475.5)], [_det(600.2, -2.0, 700.0, 50.0)]]
    a, b = _track(dets, pads=(5, 10, 4, 20), smooth_window=1)
    # clip at 0, int(), then pad and clip to the frame: y1 = max(0, 3 - 5), y2 = min(480, 485)
    assert a.box == Box(top=0, bottom=480, left=0, right=120)
    assert b.box == Box(top=0, bottom=60, left=596, right=640)
    default = _track([[_det(10.9, 20.9, 50.9, 60.9)]], smooth_window=1)[0]
    assert default.box == Box(top=20, bottom=70, left=10, right=50)


def test_a_box_outside_the_frame_is_no_face() -> None:
    (face,) = _track([[_det(700, 10, 800, 100)]], smooth_window=1)
    assert face.box is None and not face.detected


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    x1 = rng.integers(0, W - 200, n)
    y1 = rng.integers(0, H - 200, n)
    return np.stack([x1, y1, x1 + rng.integers(20, 200, n), y1 + rng.integers(20, 200, n)], axis=1)


@pytest.mark.parametrize("window", [1, 2, 3, 5, 7])
def test_streaming_smoothing_equals_the_reference(window: int) -> None:
    rng = np.random.default_rng(window)
    for n in [*range(0, 3 * window + 4), 50, 257]:
        raw = _random_boxes(rng, n)
        got = _track([[_det(*row)] for row in raw], pads=(0, 0, 0, 0), smooth_window=window)
        want = smooth_boxes_reference(np.array(raw.tolist()), T=window)
        assert [_xyxy(f) for f in got] == want.tolist(), (window, n)


def test_default_pipeline_equals_reference_face_detect() -> None:
    """Float detections, default pads (0, 10, 0, 0), T=5: the reference's face_detect()."""
    rng = np.random.default_rng(7)
    for n in [1, 3, 4, 5, 6, 9, 31]:
        raw = np.empty((n, 4))
        raw[:, 0] = rng.uniform(-20, 500, n)
        raw[:, 1] = rng.uniform(-20, 380, n)
        raw[:, 2:] = raw[:, :2] + rng.uniform(30, 150, (n, 2))  # may reach past the border
        results = []
        for rect in raw:  # inference.py's face_detect with the S3FD wrapper's clip + int
            x1, y1, x2, y2 = map(int, np.clip(rect, 0, None))
            results.append([max(0, x1 - 0), max(0, y1 - 0), min(W, x2 + 0), min(H, y2 + 10)])
        want = smooth_boxes_reference(np.array(results), T=5).tolist()
        got = _track([[_det(*rect)] for rect in raw])
        assert [_xyxy(f) for f in got] == want


def test_smoothing_runs_stop_at_a_missing_face() -> None:
    rng = np.random.default_rng(3)
    first, second = _random_boxes(rng, 7), _random_boxes(rng, 3)
    per_frame = [[_det(*r)] for r in first] + [[]] + [[_det(*r)] for r in second]
    got = _track(per_frame, pads=(0, 0, 0, 0))
    assert [_xyxy(f) for f in got[:7]] == smooth_boxes_reference(first.copy()).tolist()
    assert got[7].box is None and not got[7].detected
    assert [_xyxy(f) for f in got[8:]] == smooth_boxes_reference(second.copy()).tolist()


def test_choice_of_face() -> None:
    left, middle, right = _det(10, 100, 60, 150), _det(200, 100, 400, 300), _det(500, 100, 600, 200)
    frame = [right, left, middle]
    assert _xyxy(_track([frame], smooth_window=1, pads=(0, 0, 0, 0))[0]) == [200, 100, 400, 300]
    by_index = [_track([frame], choice="index", face_index=i, smooth_window=1, pads=(0, 0, 0, 0))[0]
                for i in range(4)]
    assert [f.box.left if f.box else None for f in by_index] == [10, 200, 500, None]
    # closest: the first frame takes the largest; later, the face nearest the previous one,
    # even when another face is larger.
    moved = [_det(190, 110, 350, 260), _det(400, 0, 640, 480)]
    got = _track([frame, moved], choice="closest", smooth_window=1, pads=(0, 0, 0, 0))
    assert _xyxy(got[1]) == [190, 110, 350, 260]


def _missing_sequence() -> list[list[Detection] | None]:
    return [[], [_det(100, 100, 200, 200, lm=True)], [], [], [],
            [_det(140, 60, 240, 160, lm=True)], [], []]


def test_passthrough_leaves_faceless_frames_alone() -> None:
    got = _track(_missing_sequence(), smooth_window=1, pads=(0, 0, 0, 0))
    has_box = [f.box is not None for f in got]
    assert has_box == [False, True, False, False, False, True, False, False]
    assert got[1].detected and got[1].landmarks is not None


def test_hold_repeats_the_last_box() -> None:
    got = _track(_missing_sequence(), missing="hold", smooth_window=1, pads=(0, 0, 0, 0))
    assert got[0].box is None
    assert [_xyxy(f) for f in got[2:5]] == [[100, 100, 200, 200]] * 3
    assert not got[3].detected and got[3].landmarks is not None
    assert [_xyxy(f) for f in got[6:]] == [[140, 60, 240, 160]] * 2


def test_interpolate_fills_gaps_linearly() -> None:
    got = _track(_missing_sequence(), missing="interpolate", smooth_window=1, pads=(0, 0, 0, 0))
    assert _xyxy(got[0]) == [100, 100, 200, 200]  # start: the nearest box
    assert [_xyxy(f) for f in got[2:5]] == [[110, 90, 210, 190], [120, 80, 220, 180],
                                           [130, 70, 230, 170]]
    assert not got[3].detected and got[3].landmarks is not None
    np.testing.assert_allclose(got[3].landmarks[0], [120, 80])
    assert [_xyxy(f) for f in got[6:]] == [[140, 60, 240, 160]] * 2  # end: hold


def test_interpolate_falls_back_to_hold_after_max_gap() -> None:
    seq = [[_det(100, 100, 200, 200)], [], [], [], [_det(200, 100, 300, 200)]]
    got = _track(seq, missing="interpolate", max_gap=2, smooth_window=1, pads=(0, 0, 0, 0))
    assert [f.box.left for f in got if f.box] == [100, 100, 100, 100, 200]


def test_fail_names_the_frame() -> None:
    with pytest.raises(FaceNotFoundError, match="frame 3"):
        _track([[_det(1, 1, 50, 50)]] * 3 + [[]], missing="fail")


def test_detect_every_third_frame_interpolates_skipped_frames() -> None:
    seq: list[list[Detection] | None] = [None] * 8
    seq[0], seq[3], seq[6] = [_det(0, 0, 90, 90)], [_det(30, 0, 120, 90)], [_det(30, 30, 120, 120)]
    got = _track(seq, smooth_window=1, pads=(0, 0, 0, 0))
    assert [f.box.left for f in got if f.box] == [0, 10, 20, 30, 30, 30, 30, 30]
    assert [f.box.top for f in got if f.box] == [0, 0, 0, 0, 10, 20, 30, 30]
    assert all(f.detected for f in got)


def test_skipped_frames_next_to_a_faceless_sample_have_no_face() -> None:
    seq = [[_det(0, 0, 90, 90)], None, None, [], None, None, [_det(0, 0, 90, 90)]]
    got = _track(seq, smooth_window=1, pads=(0, 0, 0, 0))
    assert [f.box is not None for f in got] == [True, False, False, False, False, False, True]


@pytest.mark.parametrize("missing", ["passthrough", "hold", "interpolate"])
def test_buffering_is_bounded(missing: str) -> None:
    rng = np.random.default_rng(11)
    window, max_gap, every = 5, 12, 3
    tracker = FaceTracker((H, W), smooth_window=window, missing=missing, max_gap=max_gap)
    boxes = _random_boxes(rng, 10_000)
    faceless = rng.random(10_000) < 0.05
    emitted, worst = 0, 0
    for i, row in enumerate(boxes):
        dets = None if i % every else ([] if faceless[i] else [_det(*row)])
        emitted += len(tracker.push(dets))
        worst = max(worst, tracker.pending)
        assert tracker.pending == i + 1 - emitted
    emitted += len(tracker.flush())
    assert emitted == 10_000 and tracker.pending == 0
    assert worst <= (window - 1) + (every - 1) + (max_gap if missing == "interpolate" else 0)


def test_buffering_without_gaps_is_the_smoothing_lookahead() -> None:
    tracker = FaceTracker((H, W))
    for _ in range(10_000):
        tracker.push([_det(10, 10, 100, 100)])
        assert tracker.pending <= 4
    assert len(tracker.flush()) == 4


class _ScriptedDetector:
    """Returns the detections scripted for the frame whose first pixel encodes its index."""

    name = "scripted"

    def __init__(self, script: dict[int, list[Detection]]) -> None:
        self.script = script
        self.calls: list[int] = []

    def detect(self, frame: np.ndarray) -> list[Detection]:
        index = int(frame[0, 0, 0]) + 256 * int(frame[0, 0, 1])
        self.calls.append(index)
        return self.script.get(index, [])


def _indexed_frames(n: int) -> Iterator[np.ndarray]:
    for i in range(n):
        frame = np.zeros((H, W, 3), np.uint8)
        frame[0, 0, :2] = (i % 256, i // 256)
        yield frame


def test_run_detection_pairs_every_frame_in_order() -> None:
    n = 23
    script = {i: [_det(100 + i, 100, 200 + i, 200)] for i in range(n) if i != 9}
    detector = _ScriptedDetector(script)
    pairs = list(run_detection(_indexed_frames(n), detector, FaceTracker((H, W)), detect_every=3))
    assert len(pairs) == n
    assert [int(f[0, 0, 0]) for f, _ in pairs] == list(range(n))
    assert detector.calls == list(range(0, n, 3))
    assert pairs[9][1].box is None  # sampled frame 9 has no face (passthrough)
    assert pairs[22][1].box is not None  # after the last sample: hold


def test_run_detection_rejects_a_frame_of_another_size() -> None:
    frames = [np.zeros((H, W, 3), np.uint8), np.zeros((10, 10, 3), np.uint8)]
    with pytest.raises(InputError, match="one size"):
        list(run_detection(frames, _ScriptedDetector({}), FaceTracker((H, W))))


def test_tracker_rejects_bad_options() -> None:
    with pytest.raises(InputError, match="passthrough, hold, interpolate, fail"):
        FaceTracker((H, W), missing="skip")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="largest, index, closest"):
        FaceTracker((H, W), choice="biggest")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="smooth_window"):
        FaceTracker((H, W), smooth_window=0)


def test_fixed_box_is_used_as_is_but_clipped() -> None:
    face = fixed_box_track(Box(top=10, bottom=300, left=-5, right=900), (H, W))
    assert face.box == Box(top=10, bottom=300, left=0, right=W) and face.detected
    assert fixed_box_track(Box(1, 2, 3, 4), (H, W)).box == Box(1, 2, 3, 4)
    with pytest.raises(InputError, match="outside"):
        fixed_box_track(Box(top=500, bottom=600, left=0, right=10), (H, W))
    with pytest.raises(InputError, match="empty"):
        fixed_box_track(Box(top=50, bottom=50, left=0, right=10), (H, W))
