"""RegionDetector (lipsync.faces.region): whole-frame searches only every n-th frame, the
regions around the last faces in between, with the same boxes a whole-frame search gives."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import MEDIA

from lipsync.faces import FaceTracker, RegionDetector, create_detector, run_detection
from lipsync.faces.detectors import YuFaceDetector
from lipsync.media.video import iter_frames
from lipsync.types import Detection

CLOSEUP = MEDIA / "astronaut_closeup_5s_silent.mp4"


class BrightSquare:
    """A fake backend: the bounding box of the pixels brighter than 200 in what it is shown,
    downscaling frames larger than ``max_side`` the way the real backends do."""

    name = "square"

    def __init__(self, max_side: int = 640) -> None:
        self.max_side = max_side
        self.shown: list[tuple[int, int]] = []

    def detect(self, frame: np.ndarray) -> list[Detection]:
        import cv2

        h, w = frame.shape[:2]
        back = 1.0
        if max(h, w) > self.max_side:
            s = self.max_side / max(h, w)
            size = (round(w * s), round(h * s))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            back = w / size[0]
        self.shown.append(frame.shape[:2])
        ys, xs = np.nonzero(frame[:, :, 0] > 200)
        if len(xs) == 0:
            return []
        x1, x2, y1, y2 = xs.min() * back, (xs.max() + 1) * back, ys.min() * back, (ys.max() + 1) * back
        marks = np.float32([[x1, y1], [x2, y1], [(x1 + x2) / 2, (y1 + y2) / 2], [x1, y2], [x2, y2]])
        return [Detection(float(x1), float(y1), float(x2), float(y2), 0.9, marks)]


def square_frame(x: int, y: int, size: int = 160) -> np.ndarray:
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[y : y + size, x : x + size] = 255
    return frame


def test_regions_map_back_to_frame_pixels_and_search_less() -> None:
    backend = BrightSquare()
    regions = RegionDetector(backend, full_every=4)
    for i, x in enumerate(range(400, 480, 10)):  # moving 10 px a frame
        got = regions.detect(square_frame(x, 200))
        assert len(got) == 1
        d = got[0]
        assert abs(d.x1 - x) <= 2 and abs(d.y1 - 200) <= 2 and abs(d.x2 - (x + 160)) <= 2
        assert np.allclose(d.landmarks[0], [d.x1, d.y1])
    assert regions.whole_frames == 2  # frames 0 and 4
    region_pixels = [h * w for h, w in backend.shown if (h, w) != (360, 640)]
    assert region_pixels and max(region_pixels) < 640 * 360 / 3


def test_a_face_that_leaves_its_region_is_searched_for_in_the_whole_frame() -> None:
    regions = RegionDetector(BrightSquare(), full_every=100)
    regions.detect(square_frame(100, 100))
    got = regions.detect(square_frame(900, 500))  # far outside the region around the last face
    assert len(got) == 1 and abs(got[0].x1 - 900) <= 2
    assert regions.whole_frames == 2
    assert regions.detect(np.zeros((720, 1280, 3), np.uint8)) == []


def test_run_detection_searches_regions_unless_told_otherwise() -> None:
    backend = BrightSquare()
    frames = [square_frame(400 + 5 * i, 200) for i in range(24)]
    out = list(run_detection(iter(frames), backend, FaceTracker((720, 1280)), full_frame_every=1))
    assert len(out) == 24 and backend.shown.count((360, 640)) == 24
    backend.shown.clear()
    out = list(run_detection(iter(frames), backend, FaceTracker((720, 1280))))
    assert len(out) == 24 and all(face.box is not None for _, face in out)
    assert backend.shown.count((360, 640)) == 2  # frames 0 and 20 (FULL_FRAME_EVERY)
    # each found again in its region; of the other 22, two of every three carried (frames 1, 2, 4, ...)
    assert len(backend.shown) == 2 + 2 + 7


@pytest.mark.skipif(not CLOSEUP.is_file(), reason="shared media missing")
def test_real_faces_get_the_boxes_a_whole_frame_search_gives() -> None:
    pytest.importorskip("yuface")
    frames = list(iter_frames(CLOSEUP, frame_load_cap=20))
    whole = create_detector("yuface")
    assert isinstance(whole, YuFaceDetector)
    regions = RegionDetector(create_detector("yuface"), full_every=10, carried=0)  # every frame searched
    for frame in frames:
        a = max(whole.detect(frame), key=lambda d: d.area)
        b = max(regions.detect(frame), key=lambda d: d.area)
        assert max(abs(a.x1 - b.x1), abs(a.y1 - b.y1), abs(a.x2 - b.x2), abs(a.y2 - b.y2)) <= 2.0
        assert float(np.abs(a.landmarks - b.landmarks).max()) <= 2.0
    assert regions.whole_frames == 2


@pytest.mark.skipif(not CLOSEUP.is_file(), reason="shared media missing")
def test_between_searches_a_face_is_carried_by_the_shift_of_the_picture() -> None:
    pytest.importorskip("yuface")
    first = next(iter(iter_frames(CLOSEUP, frame_load_cap=1)))
    frames = [np.roll(first, (3 * i, 12 * i), axis=(0, 1)) for i in range(6)]  # 12 px right, 3 down a frame
    regions = RegionDetector(create_detector("yuface"), full_every=10, carried=1)
    found = [max(regions.detect(f), key=lambda d: d.area) for f in frames]
    assert regions.whole_frames == 1 and regions.carried_frames == 3  # frames 1, 3 and 5
    assert RegionDetector(create_detector("yuface"), full_every=10).carried == 2  # the default: frames 1, 2, 4, 5
    for i in (1, 3, 5):
        before, now = found[i - 1], found[i]
        assert abs(now.x1 - before.x1 - 12) <= 1.0 and abs(now.x2 - before.x2 - 12) <= 1.0
        assert abs(now.y1 - before.y1 - 3) <= 1.0 and abs(now.y2 - before.y2 - 3) <= 1.0
        assert np.abs(now.landmarks - before.landmarks - np.float32([12, 3])).max() <= 1.0


def test_a_face_whose_picture_changed_is_searched_for_not_carried() -> None:
    regions = RegionDetector(BrightSquare(), full_every=10)
    assert len(regions.detect(square_frame(400, 200))) == 1
    assert regions.detect(np.zeros((720, 1280, 3), np.uint8)) == []  # gone: nothing to carry
    assert regions.carried_frames == 0
    regions = RegionDetector(BrightSquare(), full_every=10, carried=0)
    regions.detect(square_frame(400, 200))
    assert len(regions.detect(square_frame(404, 200))) == 1 and regions.carried_frames == 0


class BrightSquares(BrightSquare):
    """Like BrightSquare, one box per bright blob (several faces)."""

    def detect(self, frame: np.ndarray) -> list[Detection]:
        import cv2

        h, w = frame.shape[:2]
        back = 1.0
        if max(h, w) > self.max_side:
            s = self.max_side / max(h, w)
            frame = cv2.resize(frame, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
            back = w / frame.shape[1]
        self.shown.append(frame.shape[:2])
        count, _, stats, _ = cv2.connectedComponentsWithStats((frame[:, :, 0] > 200).astype(np.uint8))
        out = []
        for x, y, bw, bh, _ in stats[1:count]:
            x1, y1, x2, y2 = x * back, y * back, (x + bw) * back, (y + bh) * back
            out.append(Detection(float(x1), float(y1), float(x2), float(y2), 0.9))
        return out


def two_squares(i: int, gone: range = range(3, 6)) -> np.ndarray:
    frame = square_frame(800, 300)
    if i not in gone:
        frame[100:260, 100 + 2 * i : 260 + 2 * i] = 255
    return frame


def test_a_face_that_steps_out_is_found_again_when_it_returns_not_at_the_next_whole_search() -> None:
    regions = RegionDetector(BrightSquares(), full_every=10)
    counts = [len(regions.detect(two_squares(i))) for i in range(9)]
    assert counts == [2, 2, 2, 1, 1, 1, 2, 2, 2]  # back at frame 6, between the searches at 0 and 10
    assert regions.whole_frames == 1


def test_a_range_warmed_up_from_the_right_frame_detects_exactly_as_the_whole_run() -> None:
    """A cluster worker detects a frame range on its own: started cold at frame 8 (a whole-frame
    search while one face is away), it would not know where that face was and miss its return at
    frame 10; warmed up from ``range_warmup`` it gives the whole run's detections exactly."""
    from lipsync.faces.run import detect_frames, range_warmup

    frames = [two_squares(i, gone=range(7, 10)) for i in range(24)]
    whole = list(detect_frames(frames, BrightSquares(), full_frame_every=4))
    assert [len(d) for d in whole[6:12]] == [2, 1, 1, 1, 2, 2]
    cold = list(detect_frames(frames[8:], BrightSquares(), first=8, full_frame_every=4))
    assert [len(d) for d in cold[:4]] == [1, 1, 1, 1]  # what the warm-up is for
    for start in (5, 8, 10, 11, 13):
        backend = BrightSquares()
        warm = range_warmup(start, backend, full_frame_every=4)
        part = list(detect_frames(frames[warm:], backend, first=warm, full_frame_every=4))
        assert part[start - warm:] == whole[start:], start


def test_pixels_that_are_not_square_are_searched_in_regions_of_the_displayed_picture() -> None:
    """Anamorphic video (a stored 960x720 frame shown 1280x720, sample aspect ratio 4:3): the
    regions are searched in the displayed picture, the boxes come back in stored pixels, and a
    range warmed up by ``range_warmup`` detects exactly as the whole run."""
    from fractions import Fraction

    from lipsync.faces.run import SquarePixelDetector, detect_frames, range_warmup

    def stored(x: int) -> np.ndarray:  # a 160 px square as displayed: 120 stored pixels wide
        frame = np.zeros((720, 960, 3), np.uint8)
        frame[200:360, x : x + 120] = 255
        return frame

    frames = [stored(300 + 3 * i) for i in range(24)]
    backend = BrightSquare()
    whole = list(detect_frames(frames, SquarePixelDetector(backend, Fraction(4, 3))))
    assert backend.shown.count((360, 640)) == 2  # the whole displayed frame at frames 0 and 20 only
    assert len(backend.shown) < 24 // 2
    for i, found in enumerate(whole):
        (d,) = found
        assert abs(d.x1 - (300 + 3 * i)) <= 2 and abs(d.x2 - (420 + 3 * i)) <= 2 and abs(d.y1 - 200) <= 2, (i, d)
    every = list(detect_frames(frames, SquarePixelDetector(BrightSquare(), Fraction(4, 3)), full_frame_every=1))
    for a, b in zip(whole, every):
        assert abs(a[0].x1 - b[0].x1) <= 2 and abs(a[0].y2 - b[0].y2) <= 2
    for start in (5, 13, 21):
        detector = SquarePixelDetector(BrightSquare(), Fraction(4, 3))
        warm = range_warmup(start, detector)
        assert warm % 20 == 0 and warm <= start
        part = list(detect_frames(frames[warm:], detector, first=warm))
        for a, b in zip(part[start - warm :], whole[start:], strict=True):
            (da,), (db,) = a, b
            assert (da.x1, da.y1, da.x2, da.y2) == (db.x1, db.y1, db.x2, db.y2), start
            np.testing.assert_array_equal(da.landmarks, db.landmarks)
