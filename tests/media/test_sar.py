"""Pixel shape: non-square pixels (a sample aspect ratio, SAR) are kept in the mp4 output, and faces
are found and the mouth generated on the picture as displayed (frames stay in stored pixels; the
detector sees a square-pixel view, ``lipsync.faces.run.SquarePixelDetector``). The lossless
Matroska output cannot carry a SAR with PyAV 18: its frames are resampled to square pixels, with
a warning."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from colour_clips import patch_image, write_clip
from conftest import CHECKPOINT, MEDIA, SHARED, need
from lipsync.engine.stages import track_faces
from lipsync.faces import create_detector
from lipsync.faces.run import SquarePixelDetector
from lipsync.media.aspect import display_size, sample_aspect_ratio, to_square_pixels
from lipsync.media.video import VideoWriter, iter_frames, picture_changes, probe
from lipsync.options import FaceOptions
from lipsync.types import Detection

ROOT = Path(__file__).resolve().parents[2]
CASE = SHARED / "cases" / "anamorphic_sar"


def test_display_size_stretches_one_side():
    assert display_size(192, 256, Fraction(4, 3)) == (256, 256)
    assert display_size(720, 480, Fraction(8, 9)) == (720, 540)
    assert display_size(1440, 1080, Fraction(4, 3)) == (1920, 1080)
    assert display_size(64, 48, Fraction(1)) == (64, 48)
    assert sample_aspect_ratio(None) == 1 and sample_aspect_ratio(Fraction(0, 1)) == 1
    assert sample_aspect_ratio(Fraction(16, 11)) == Fraction(16, 11)


def test_probe_reports_the_shared_case():
    info = probe(need(CASE / "anamorphic_sar43.mp4"))
    assert (info.width, info.height, info.sample_aspect_ratio) == (192, 256, Fraction(4, 3))
    assert display_size(info.width, info.height, info.sample_aspect_ratio) == (256, 256)


@pytest.fixture(scope="module")
def anamorphic(tmp_path_factory):
    """A 96x64 stored clip with SAR 4:3 (shown 128x64)."""
    path = tmp_path_factory.mktemp("sar") / "sar.mp4"
    return write_clip(path, patch_image(96, 64), sar=Fraction(4, 3))


def test_mp4_output_keeps_the_sar(anamorphic, tmp_path):
    info = probe(anamorphic)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, info.fps, like=info) as writer:
        for frame in iter_frames(anamorphic):
            writer.write(frame)
    back = probe(out)
    assert (back.width, back.height, back.sample_aspect_ratio) == (96, 64, Fraction(4, 3))
    assert picture_changes(info) == []


def test_lossless_output_is_resampled_to_square_pixels(anamorphic, tmp_path):
    info = probe(anamorphic)
    out = tmp_path / "out.mkv"
    frames = list(iter_frames(anamorphic))
    with VideoWriter(out, info.fps, like=info, lossless=True) as writer:
        for frame in frames:
            writer.write(frame)
    back = probe(out)
    assert (back.width, back.height, back.sample_aspect_ratio) == (128, 64, 1)
    assert np.array_equal(next(iter_frames(out)), to_square_pixels(frames[0], Fraction(4, 3)))
    (note,) = picture_changes(info, lossless=True)
    assert "not square" in note and "4/3" in note and "resampled to square pixels" in note


def test_rotation_turns_the_pixel_shape(tmp_path):
    """A phone-style 90° display rotation makes the stored pixels' width the upright height: the
    SAR of the upright frames is the inverse, and the upright picture is shown 64x128."""
    path = write_clip(tmp_path / "rot.mp4", patch_image(96, 64), sar=Fraction(4, 3), rotation=-90)
    info = probe(path)
    assert (info.width, info.height, info.sample_aspect_ratio) == (64, 96, Fraction(3, 4))
    assert next(iter_frames(path, square_pixels=True)).shape == (128, 64, 3)


def test_square_pixels_option_gives_the_displayed_shape(anamorphic):
    assert next(iter_frames(anamorphic, square_pixels=True)).shape == (64, 128, 3)
    assert next(iter_frames(anamorphic)).shape == (64, 96, 3)


class _SeesSquares:
    """Finds the white square of a test frame; records the shape it was given."""

    name = "white"

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def detect(self, frame):
        self.shapes.append(frame.shape)
        ys, xs = np.nonzero(frame[..., 0] > 200)
        marks = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.max() + 1]] * 2 + [[xs.mean(), ys.mean()]], np.float32)
        return [Detection(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1), 0.9, marks)]


def test_square_pixel_detector_maps_boxes_back_to_stored_pixels():
    """A square shown on screen is 3/4 as wide in stored pixels at SAR 4:3: the detector sees it
    square, and its box and landmarks come back in stored pixels."""
    stored = np.zeros((120, 150, 3), np.uint8)
    stored[30:90, 45:90] = 255  # 45 stored columns x 60 rows = 60 x 60 on screen
    inner = _SeesSquares()
    (found,) = SquarePixelDetector(inner, Fraction(4, 3)).detect(stored)
    assert inner.shapes == [(120, 200, 3)]
    assert abs(found.x1 - 45) <= 1 and abs(found.x2 - 90) <= 1 and (found.y1, found.y2) == (30, 90)
    assert found.landmarks is not None and abs(found.landmarks[4, 0] - 67.5) <= 1
    assert found.landmarks.dtype == np.float32


def _first_frame(path: Path) -> np.ndarray:
    return next(iter_frames(path))


@pytest.fixture(scope="module")
def detector():
    return create_detector("auto")


def test_real_face_is_found_as_displayed(detector):
    """A real face squeezed to 75 % width and tagged 4:3: found on the displayed picture, its box
    (mapped back and stretched) matches the box on the unsqueezed picture; the squeezed face
    given to the detector as stored gives a narrower box, off by more than the tolerance."""
    frame = _first_frame(need(MEDIA / "astronaut_closeup_5s_silent.mp4"))
    height, width = frame.shape[:2]
    squeezed = cv2.resize(frame, (width * 3 // 4, height), interpolation=cv2.INTER_AREA)
    (truth,) = sorted(detector.detect(frame), key=lambda d: -d.area)[:1]
    (found,) = sorted(SquarePixelDetector(detector, Fraction(4, 3)).detect(squeezed), key=lambda d: -d.area)[:1]
    (naive,) = sorted(detector.detect(squeezed), key=lambda d: -d.area)[:1]
    tolerance = 0.05 * (truth.x2 - truth.x1)
    shown = (found.x1 * 4 / 3, found.x2 * 4 / 3, found.y1, found.y2)
    assert np.abs(np.subtract(shown, (truth.x1, truth.x2, truth.y1, truth.y2))).max() <= tolerance
    naive_shown = ((naive.x2 - naive.x1) * 4 / 3) / (naive.y2 - naive.y1)
    assert abs(naive_shown - (truth.x2 - truth.x1) / (truth.y2 - truth.y1)) > 0.1


def test_shared_case_tracks_the_displayed_face(detector):
    """On the shared anamorphic clip, the tracked boxes (stored pixels) stretched by 4/3 are the
    boxes tracked on the square-pixel view of the same frames."""
    path = need(CASE / "anamorphic_sar43.mp4")
    info = probe(path)
    faces = FaceOptions()
    stored = [face.box for _, face in track_faces(iter_frames(path, frame_load_cap=10), (256, 192), faces, detector,
                                                  info.sample_aspect_ratio)]
    square = [face.box for _, face in track_faces(iter_frames(path, frame_load_cap=10, square_pixels=True), (256, 256),
                                                  faces, detector)]
    assert all(box is not None for box in stored + square)
    for a, b in zip(stored, square):
        assert abs(a.left * 4 / 3 - b.left) <= 3 and abs(a.right * 4 / 3 - b.right) <= 3
        assert abs(a.top - b.top) <= 3 and abs(a.bottom - b.bottom) <= 3


def test_shared_case_through_the_cli(tmp_path):
    """Through the CLI: the mp4 keeps 192x256 at SAR 4:3 (shown 256x256, was shown 192x256); the
    lossless mkv is 256x256 square pixels and the CLI says so."""
    video, audio = need(CASE / "anamorphic_sar43.mp4"), need(CASE / "speech_2s.wav")
    base = [sys.executable, "-m", "lipsync", str(video), str(audio), "--checkpoint", str(need(CHECKPOINT)), "-q"]
    mp4, mkv = tmp_path / "out.mp4", tmp_path / "out.mkv"
    proc = subprocess.run([*base, "-o", str(mp4)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    info = probe(mp4)
    assert (info.width, info.height, info.sample_aspect_ratio) == (192, 256, Fraction(4, 3))
    proc = subprocess.run([*base, "-o", str(mkv), "--lossless"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "resampled to square pixels" in proc.stderr
    info = probe(mkv)
    assert (info.width, info.height, info.sample_aspect_ratio) == (256, 256, 1)
