"""Tests of lipsync.faces: detectors on real clips, the streaming tracker, the download helper."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import http.server
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import MEDIA
from lipsync.errors import DependencyError, FaceNotFoundError, InputError, ModelError
from lipsync.faces import (
    REGISTRY,
    FaceTracker,
    YuFaceDetector,
    create_detector,
    default_models_dir,
    download,
    ensure_file,
    fixed_box_track,
    run_detection,
    smooth_boxes_reference,
)
from lipsync import _download
from lipsync.types import Box, Detection, FaceFrame

# --------------------------------------------------------------------------------------------
# shared media


CLOSEUP = MEDIA / "astronaut_closeup_5s_silent.mp4"
FULL = MEDIA / "astronaut_full_5s_silent.mp4"


@functools.lru_cache(maxsize=None)
def _decode(path: Path) -> tuple[np.ndarray, ...]:
    av = pytest.importorskip("av")
    with av.open(str(path)) as container:
        return tuple(f.to_ndarray(format="rgb24") for f in container.decode(video=0))


def _frames(path: Path) -> tuple[np.ndarray, ...]:
    if not path.is_file():
        pytest.skip(f"test media {path} is absent (set LIPSYNC_SHARED to the shared folder)")
    return _decode(path)


@functools.lru_cache(maxsize=None)
def _yuface() -> YuFaceDetector:
    return YuFaceDetector()


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _check_landmark_order(det: Detection) -> None:
    assert det.landmarks is not None and det.landmarks.shape == (5, 2)
    r_eye, l_eye, nose, r_mouth, l_mouth = det.landmarks
    assert r_eye[0] < nose[0] < l_eye[0], "the subject's right eye is on the image's left"
    assert r_mouth[0] < l_mouth[0]
    assert max(r_eye[1], l_eye[1]) < nose[1] < min(r_mouth[1], l_mouth[1])
    assert det.x1 <= r_eye[0] and l_eye[0] <= det.x2


def _require_yuface() -> None:
    if sys.version_info >= (3, 12):
        pytest.skip("yuface has wheels for Python <= 3.11 only")
    pytest.importorskip("yuface")


def test_yuface_finds_the_face_in_every_closeup_frame() -> None:
    _require_yuface()
    frames = _frames(CLOSEUP)
    assert len(frames) == 125
    for i, frame in enumerate(frames):
        dets = _yuface().detect(frame)
        assert len(dets) == 1, f"frame {i}: {len(dets)} faces"
        det = dets[0]
        assert _iou((det.x1, det.y1, det.x2, det.y2), (155, 125, 352, 370)) > 0.7, (i, det)
        _check_landmark_order(det)
        assert det.landmarks is not None
        assert 280 < det.landmarks[3:, 1].mean() < 320, "mouth near y 300"


def test_yuface_runs_one_openmp_thread_per_detection_and_restores_the_setting() -> None:
    """The detection is limited to one OpenMP thread in the calling thread only (measured
    cheaper in CPU beside the network); torch's setting in that thread is back afterwards, and
    the boxes are those of an unlimited detector."""
    _require_yuface()
    pytest.importorskip("threadpoolctl")
    import torch
    from threadpoolctl import threadpool_info

    frame = _frames(CLOSEUP)[0]
    limited = YuFaceDetector(threads=1)
    seen: list[list[int]] = []
    real = limited._direct or limited._detect

    def spy(*args, **kwargs):  # what the OpenMP runtimes say while yuface runs
        seen.append([i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"])
        return real(*args, **kwargs)

    if limited._direct is not None:
        limited._direct = spy
    else:
        limited._detect = spy
    threads = torch.get_num_threads()
    got = limited.detect(frame)
    assert seen and seen[0] and set(seen[0]) == {1}
    assert torch.get_num_threads() == threads
    free = YuFaceDetector(threads=None).detect(frame)
    assert [(d.x1, d.y1, d.x2, d.y2) for d in got] == [(d.x1, d.y1, d.x2, d.y2) for d in free]


def test_yuface_called_without_the_gil_gives_the_wheels_own_results() -> None:
    """The direct ctypes call of libfacedetection (no GIL held) against ``yuface.detect``:
    the same faces, boxes, landmarks and confidences on every frame of both clips; and another
    Python thread keeps running while it detects."""
    _require_yuface()
    import threading
    import time

    import yuface

    detector = YuFaceDetector(threads=None)
    if detector._direct is None:
        pytest.skip("this yuface build does not export facedetect_cnn; the wheel's own call is used")
    frames = _frames(CLOSEUP)[::5] + _frames(FULL)[::5]
    for i, frame in enumerate(frames):
        image = np.ascontiguousarray(frame[:, :, ::-1])
        confs, boxes, marks = yuface.detect(image, conf=0.5)
        rows = detector._direct(image)
        rows = rows[rows[:, 0] > 50]
        assert len(rows) == len(confs) >= 1, i
        assert np.array_equal(rows[:, 0], confs) and np.array_equal(rows[:, 1:5], boxes), i
        assert np.array_equal(rows[:, 5:15], marks), i

    ticks = [0]
    done = threading.Event()

    def count() -> None:
        while not done.is_set():
            ticks[0] += 1

    def ticks_during(call: Callable[[], object]) -> int:
        """How far the counting thread got while ``call`` ran (median of 5)."""
        seen = []
        for _ in range(5):
            time.sleep(0.01)
            before = ticks[0]
            call()
            seen.append(ticks[0] - before)
        return sorted(seen)[2]

    threadpoolctl = pytest.importorskip("threadpoolctl")
    image = np.ascontiguousarray(frames[0][:, :, ::-1])
    counter = threading.Thread(target=count)
    counter.start()
    try:
        # one OpenMP thread in this thread, so a core is free for the counter: what is
        # measured is the GIL, not the CPU
        with threadpoolctl.threadpool_limits(1, user_api="openmp"):
            direct = ticks_during(lambda: detector._direct(image))
            wheel = ticks_during(lambda: yuface.detect(image, conf=0.5))
    finally:
        done.set()
        counter.join()
    # measured here: ~420k ticks against ~45k in a 47 ms call (the wheel lets go only around it)
    assert direct > 1000 and direct > 4 * max(wheel, 1), (direct, wheel)


def test_yuface_finds_the_small_face_in_every_full_frame() -> None:
    _require_yuface()
    frames = _frames(FULL)
    for i, frame in enumerate(frames):
        dets = _yuface().detect(frame)
        assert len(dets) == 1, f"frame {i}: {len(dets)} faces"
        det = dets[0]
        assert 70 < det.x2 - det.x1 < 130, (i, det)
        cx, cy = det.center
        assert 195 < cx < 250 and 90 < cy < 145, (i, det)
        _check_landmark_order(det)


def test_large_frames_are_detected_downscaled_and_mapped_back() -> None:
    _require_yuface()
    frame = _frames(CLOSEUP)[0]
    big = np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1)  # 1024x1024: detected at 640
    (small,) = _yuface().detect(frame)
    (large,) = _yuface().detect(big)
    assert _iou((small.x1 * 2, small.y1 * 2, small.x2 * 2, small.y2 * 2),
                (large.x1, large.y1, large.x2, large.y2)) > 0.85
    assert large.landmarks is not None and small.landmarks is not None
    assert np.abs(large.landmarks - small.landmarks * 2).max() < 16


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_no_face_gives_no_detection(kind: str) -> None:
    _require_yuface()
    rng = np.random.default_rng(0)
    frame = (np.full((360, 640, 3), 128, np.uint8) if kind == "blank"
             else rng.integers(0, 256, (360, 640, 3), dtype=np.uint8))
    assert _yuface().detect(frame) == []


def test_detector_rejects_a_non_rgb_frame() -> None:
    _require_yuface()
    with pytest.raises(InputError, match="RGB"):
        _yuface().detect(np.zeros((10, 10), np.uint8))


def test_yunet_finds_the_face_when_its_model_is_present() -> None:
    path = default_models_dir() / "facedetect" / REGISTRY["yunet_2023mar"].filename
    if not path.is_file():
        pytest.skip(f"YuNet model not present at {path} (no internet here to fetch it)")
    detector = create_detector("yunet", models_dir=str(default_models_dir()))
    (det,) = detector.detect(_frames(CLOSEUP)[0])
    assert _iou((det.x1, det.y1, det.x2, det.y2), (155, 125, 352, 370)) > 0.6
    _check_landmark_order(det)


def test_yunet_output_rows_become_detections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the real model: a stand-in FaceDetectorYN checks the parsing and the rescale."""
    from lipsync.faces import detectors

    spec = REGISTRY["yunet_2023mar"]
    folder = tmp_path / "facedetect"
    folder.mkdir()
    (folder / spec.filename).write_bytes(b"\0" * (spec.size or 1))  # present: no download

    class FakeYN:
        sizes: list[tuple[int, int]] = []

        @classmethod
        def create(cls, model: str, *args: object) -> FakeYN:
            assert model == str(folder / spec.filename)
            return cls()

        def setInputSize(self, size: tuple[int, int]) -> None:  # noqa: N802 (OpenCV's name)
            self.sizes.append(size)

        def detect(self, image: np.ndarray) -> tuple[int, np.ndarray]:
            row = [10, 20, 100, 120, 30, 50, 80, 50, 55, 80, 35, 110, 75, 110, 0.93]
            return 1, np.array([row], np.float32)

    monkeypatch.setattr(detectors.cv2, "FaceDetectorYN", FakeYN)
    detector = create_detector("yunet", models_dir=str(tmp_path))
    assert detector.name == "yunet"
    (det,) = detector.detect(np.zeros((1280, 960, 3), np.uint8))  # detected at 640x480
    assert FakeYN.sizes == [(480, 640)]
    assert (det.x1, det.y1, det.x2, det.y2) == pytest.approx((20, 40, 220, 280))
    assert det.score == pytest.approx(0.93)
    assert det.landmarks is not None
    np.testing.assert_allclose(det.landmarks[0], [60, 100])
    np.testing.assert_allclose(det.landmarks[4], [150, 220])


# --------------------------------------------------------------------------------------------
# create_detector


def test_auto_picks_yuface_here_and_says_so() -> None:
    _require_yuface()
    if importlib.util.find_spec("insightface"):
        pytest.skip("insightface is installed here; auto may pick it")
    assert create_detector("auto").name == "yuface"
    assert create_detector("yuface").name == "yuface"


def test_unknown_detector_lists_the_choices() -> None:
    with pytest.raises(InputError, match="auto, yuface, yunet, insightface"):
        create_detector("dlib")  # type: ignore[arg-type]


def test_missing_insightface_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "insightface", None)  # import fails even if installed
    monkeypatch.setitem(sys.modules, "insightface.app", None)
    with pytest.raises(DependencyError, match="pip install insightface onnxruntime"):
        create_detector("insightface")


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


# --------------------------------------------------------------------------------------------
# download helper (local server and file:// only; never the internet)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        """Keep the test output clean."""


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, bytes]]:
    """An http.server on 127.0.0.1 serving one file; yields (base URL, the file's bytes)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "www"
    root.mkdir()
    payload = os.urandom(200_000)
    (root / "model.onnx").write_bytes(payload)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", payload
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_over_http_checks_the_hash(served: tuple[str, bytes], tmp_path: Path) -> None:
    base, payload = served
    dest = tmp_path / "models" / "facedetect" / "model.onnx"
    got = download(f"{base}/model.onnx", dest, sha256=hashlib.sha256(payload).hexdigest())
    assert got == dest and dest.read_bytes() == payload
    assert _leftovers(dest.parent) == ["model.onnx"]  # no temporary file left


def test_download_with_a_wrong_hash_keeps_nothing(
    served: tuple[str, bytes], tmp_path: Path
) -> None:
    base, _ = served
    dest = tmp_path / "m" / "model.onnx"
    with pytest.raises(ModelError, match="sha256") as info:
        download(f"{base}/model.onnx", dest, sha256="0" * 64)
    assert str(dest) in str(info.value)
    assert _leftovers(dest.parent) == []


def test_download_http_404_names_url_and_destination(
    served: tuple[str, bytes], tmp_path: Path
) -> None:
    base, _ = served
    dest = tmp_path / "m" / "absent.onnx"
    with pytest.raises(ModelError, match="HTTP 404") as info:
        download(f"{base}/absent.onnx", dest)
    assert f"{base}/absent.onnx" in str(info.value) and str(dest) in str(info.value)
    assert _leftovers(dest.parent) == []


def test_download_from_a_file_url(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"weights" * 1000)
    dest = tmp_path / "out" / "w.bin"
    download(src.as_uri(), dest, sha256=hashlib.sha256(src.read_bytes()).hexdigest())
    assert dest.read_bytes() == src.read_bytes()


def test_unreachable_url_says_where_to_put_the_file(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dest = tmp_path / "facedetect" / "face.onnx"
    with pytest.raises(ModelError, match="by hand") as info:
        download(f"http://127.0.0.1:{port}/face.onnx", dest, timeout=5)
    assert str(dest) in str(info.value) and f"127.0.0.1:{port}" in str(info.value)
    with pytest.raises(ModelError, match="by hand"):
        download((tmp_path / "nope.bin").as_uri(), dest)
    assert _leftovers(dest.parent) == []


def test_ensure_file_uses_the_registry_and_an_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "yunet.onnx"
    src.write_bytes(b"x" * 1234)
    spec = _download.RemoteFile("face.onnx", src.as_uri(), hashlib.sha256(b"x" * 1234).hexdigest(),
                                1234, "MIT")
    monkeypatch.setitem(_download.REGISTRY, "test_model", spec)
    path = ensure_file("test_model", tmp_path / "models")
    assert path.read_bytes() == b"x" * 1234
    src.unlink()  # present now: no second download
    assert ensure_file("test_model", tmp_path / "models") == path
    with pytest.raises(ModelError, match="Unknown model file"):
        ensure_file("nope", tmp_path)


def test_registry_pins_yunet() -> None:
    spec = REGISTRY["yunet_2023mar"]
    assert spec.sha256 is not None and len(spec.sha256) == 64
    assert spec.url.startswith("https://") and spec.license == "MIT"
