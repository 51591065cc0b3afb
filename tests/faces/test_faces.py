"""Tests of lipsync.faces' detectors: real faces in the shared clips, every backend's output, create_detector.

The streaming tracker is tested in test_tracking.py, the download helper in test_download.py."""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import MEDIA
from lipsync.errors import DependencyError, InputError
from lipsync.faces import (
    REGISTRY,
    YuFaceDetector,
    create_detector,
    default_models_dir,
)
from lipsync.types import Detection

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
