"""The face side of the bad-input matrix (issue #6), with the real detector (yuface) on frames
built from the real face clip, and a network that paints every generated mouth green so the
output shows which frames (and where) were re-synced.

Outcomes: no face → the video passes through unchanged, the CLI says so (and with the "fail"
policy the job stops with one line); a face in some frames → only those change; several faces
→ the largest (or the one asked for); a tiny face → found and re-synced down to ~12 px; a face
cut by the border → its box is clipped and the paste stays inside the frame.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
from conftest import MEDIA, need
from fakes import FakeDetector, write_video
from robust import Painter, assert_cli_fails, face_clip, green_mask, run_cli, sync, tone

from lipsync.faces import YuFaceDetector
from lipsync.media.video import iter_frames

N = 8
SECONDS = N / 25


@pytest.fixture(scope="module")
def detector() -> YuFaceDetector:
    return YuFaceDetector()


@pytest.fixture(scope="module")
def faces() -> list[np.ndarray]:
    """Eight 256x256 frames of the real face (box ≈ x 76-172, y 70-184)."""
    return [np.ascontiguousarray(cv2.resize(f, (256, 256), interpolation=cv2.INTER_AREA)) for f in face_clip(N)]


def run(
    tmp_path: Path, frames: list[np.ndarray], detector: object, **options: object
) -> tuple[object, list[np.ndarray]]:
    video = write_video(tmp_path / "in.mkv", frames)
    out = tmp_path / "out.mkv"
    result = sync(video, tone(len(frames) / 25), out, network=Painter(), detector=detector, lossless=True, **options)
    return result, list(iter_frames(out))


def painted(frames: list[np.ndarray]) -> list[bool]:
    return [bool(green_mask(f).sum() > 20) for f in frames]


def test_detection_shares_the_cpu_only_while_the_network_is_on_it(tmp_path: Path, faces: list[np.ndarray]) -> None:
    """Beside a network on the CPU yuface runs one OpenMP thread per detection; the detector is
    given back as it was (all threads), and without overlap nothing is changed."""
    detector = YuFaceDetector()
    seen: list[int | None] = []
    rows = detector._rows

    def spy(image: np.ndarray) -> np.ndarray:
        seen.append(detector.threads)
        return rows(image)

    detector._rows = spy  # type: ignore[method-assign]
    result, _ = run(tmp_path, faces, detector)
    assert result.frames_with_face == N and set(seen) == {1}  # a fake network: the CPU's
    assert detector.threads is None
    seen.clear()
    run(tmp_path, faces, detector, overlap=False)
    assert set(seen) == {None}


def test_no_face_at_all_passes_through(tmp_path: Path, detector: YuFaceDetector) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(N)]
    result, out = run(tmp_path, frames, detector)
    assert result.frames == N and result.frames_with_face == 0
    assert all(np.array_equal(a, b) for a, b in zip(out, frames))


def test_no_face_in_the_cli_warns_or_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    blank = write_video(tmp_path / "wall.mkv", [np.full((128, 128, 3), 90, np.uint8)] * N)
    audio = tmp_path / "voice.wav"
    sf.write(audio, tone(SECONDS).samples.T, 16000)
    out = tmp_path / "out.mp4"
    rc, err = run_cli(
        [blank, audio, "-o", out, "--checkpoint", "x.pth", "--detector", "yuface"], capsys, monkeypatch, Painter()
    )
    assert rc == 0 and out.is_file()
    assert "warning" in err and "no face" in err and "wall.mkv" in err and "--box" in err, err
    out.unlink()
    err = assert_cli_fails(
        blank,
        audio,
        out,
        capsys,
        monkeypatch,
        "No face",
        "frame 0",
        extra=["--detector", "yuface", "--missing-face", "fail"],
        network=Painter(),
    )
    assert "policy" in err


def test_face_in_only_some_frames(tmp_path: Path, faces: list[np.ndarray], detector: YuFaceDetector) -> None:
    gone = {2, 3, 4}
    frames = [np.full_like(f, 60) if i in gone else f for i, f in enumerate(faces)]
    result, out = run(tmp_path, frames, detector)
    assert result.frames == N and result.frames_with_face == N - len(gone)
    assert painted(out) == [i not in gone for i in range(N)]
    assert all(np.array_equal(out[i], frames[i]) for i in gone)  # untouched
    result, out = run(tmp_path, frames, detector, missing_face="hold")
    assert painted(out) == [True] * N  # the last box is held over the gap


def two_faces(face: np.ndarray) -> np.ndarray:
    """A 256x512 frame: the face at full size on the left, a smaller copy on the right."""
    canvas = np.full((256, 512, 3), 30, np.uint8)
    canvas[:, :256] = face
    canvas[48:208, 300:460] = cv2.resize(face, (160, 160), interpolation=cv2.INTER_AREA)
    return canvas


def green_columns(frames: list[np.ndarray]) -> float:
    columns = np.concatenate([np.nonzero(green_mask(f).any(axis=0))[0] for f in frames])
    return float(columns.mean())


def test_several_faces_the_largest_or_the_one_asked_for(
    tmp_path: Path, faces: list[np.ndarray], detector: YuFaceDetector
) -> None:
    frames = [two_faces(f) for f in faces]
    assert len(detector.detect(frames[0])) == 2
    result, out = run(tmp_path, frames, detector)
    assert result.frames_with_face == N and green_columns(out) < 256  # the big face, on the left
    result, out = run(tmp_path, frames, detector, face_choice="index", face_index=1)
    assert result.frames_with_face == N and green_columns(out) > 300  # the second from the left


@pytest.mark.parametrize("size", [128, 64])
def test_tiny_face(tmp_path: Path, detector: YuFaceDetector, size: int) -> None:
    """The whole-photo clip (face ≈ 95 px of 512) shrunk: the face is ≈ 24 or 12 px wide."""
    source = need(MEDIA / "astronaut_full_5s_silent.mp4")
    frames = [cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in iter_frames(source, frame_load_cap=N)]
    result, out = run(tmp_path, frames, detector)
    assert result.frames == N and result.frames_with_face == N
    assert all(painted(out))


def test_face_too_small_to_find_passes_through(
    tmp_path: Path, faces: list[np.ndarray], detector: YuFaceDetector
) -> None:
    frames = [cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA) for f in faces]
    result, out = run(tmp_path, frames, detector)
    assert result.frames == N and result.frames_with_face == 0
    assert all(np.array_equal(a, b) for a, b in zip(out, frames))


def test_face_cut_by_the_left_border(tmp_path: Path, faces: list[np.ndarray], detector: YuFaceDetector) -> None:
    shift = 125  # the face box starts left of the frame
    frames = [np.ascontiguousarray(np.pad(f[:, shift:], ((0, 0), (0, shift), (0, 0)))) for f in faces]
    assert detector.detect(frames[0])[0].x1 < 0
    result, out = run(tmp_path, frames, detector)
    assert result.frames_with_face == N
    assert all(painted(out))


def test_face_cut_by_the_bottom_border(tmp_path: Path, faces: list[np.ndarray], detector: YuFaceDetector) -> None:
    shift = 90  # the chin and the padding below it are outside the frame
    frames = [np.ascontiguousarray(np.pad(f[:-shift], ((shift, 0), (0, 0), (0, 0)))) for f in faces]
    result, out = run(tmp_path, frames, detector)
    assert result.frames == N
    assert all(f.shape == (256, 256, 3) for f in out)


@pytest.mark.parametrize(
    "box",
    [(-60, -40, 80, 90), (200, 200, 330, 300), (-500, -500, -400, -400)],
    ids=["past the top-left corner", "past the bottom-right corner", "wholly outside"],
)
def test_detector_boxes_past_the_border(tmp_path: Path, box: tuple[int, int, int, int]) -> None:
    """Whatever a detector returns, the paste stays inside the frame; a box wholly outside is no face."""
    frames = [np.full((256, 256, 3), 100, np.uint8) for _ in range(4)]
    result, out = run(tmp_path, frames, FakeDetector(box=box))
    inside = box[2] > 0 and box[3] > 0
    assert result.frames_with_face == (4 if inside else 0)
    assert all(f.shape == (256, 256, 3) for f in out)
