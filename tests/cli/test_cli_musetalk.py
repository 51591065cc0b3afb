"""MuseTalk 1.5 through the product's front doors, with the golden fixture's reduced weights.

``--model musetalk --mode reference --box … --lossless`` writes exactly the original's pasted faces
(``res_frame``); the main job, ``segment`` and ``batch`` run MuseTalk on a small clip; a missing
models folder says where the files go and how to fetch them.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import av
import numpy as np
import pytest

pytest.importorskip("diffusers", reason="MuseTalk needs the musetalk extra (diffusers)")
pytest.importorskip("transformers", reason="MuseTalk needs the musetalk extra (transformers)")

from conftest import SHARED, need

from lipsync.cli import main
from lipsync.media.video import VideoWriter

FIX = SHARED / "fixtures" / "musetalk_reference"
BOX = ("130", "372", "160", "356")  # top bottom left right: the fixture's x1,y1,x2,y2 = 160,130,356,372
PASTE = (slice(130, 382), slice(160, 356))  # the box with v1.5's 10 px bottom margin


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_reference_mode_writes_the_originals_faces_exactly(tmp_path: Path) -> None:
    """Through the CLI, frame by frame: the region is the fixture's res_frame bit for bit, and
    every pixel outside it is the input's."""
    out = tmp_path / "ref.mkv"
    rc = main([str(need(FIX / "inputs" / "face_2s.mkv")), str(FIX / "inputs" / "speech_2s.wav"), "-o", str(out),
               "--model", "musetalk", "--models-dir", str(need(FIX / "models")), "--box", *BOX,
               "--mode", "reference", "--lossless", "--device", "cpu", "-q"])
    assert rc == 0
    expected = np.load(need(FIX / "expected.npz"))
    frames, source = decode(out), decode(FIX / "inputs" / "face_2s.mkv")
    assert len(frames) == 50
    for k, i in enumerate(expected["img_idx"]):
        assert np.array_equal(frames[i][PASTE][..., ::-1], expected["res_frame"][k]), f"frame {i}"
    outside = np.ones(source[0].shape[:2], bool)
    outside[PASTE] = False
    assert all(np.array_equal(f[outside], s[outside]) for f, s in zip(frames, source))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 6-frame 256x256 clip (the fixture's face, halved) and 0.24 s of its speech."""
    folder = tmp_path_factory.mktemp("small")
    frames = decode(need(FIX / "inputs" / "face_2s.mkv"))[:6]
    clip = folder / "face.mkv"
    with VideoWriter(clip, 25, lossless=True) as writer:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[::2, ::2]))
    with wave.open(str(FIX / "inputs" / "speech_2s.wav")) as src:
        pcm = src.readframes(3840)
    voice = folder / "voice.wav"
    with wave.open(str(voice), "wb") as dst:
        dst.setnchannels(1)
        dst.setsampwidth(2)
        dst.setframerate(16000)
        dst.writeframes(pcm)
    return clip, voice


SMALL_BOX = ("65", "186", "80", "178")  # the fixture's box, halved


def musetalk_args() -> list[str]:
    return ["--model", "musetalk", "--models-dir", str(need(FIX / "models")), "--box", *SMALL_BOX, "--device", "cpu"]


def test_main_job_and_segment(small: tuple[Path, Path], tmp_path: Path) -> None:
    clip, voice = small
    out = tmp_path / "synced.mkv"
    assert main([str(clip), str(voice), "-o", str(out), "--lossless", *musetalk_args(), "-q"]) == 0
    synced, source = decode(out), decode(clip)
    assert len(synced) == 6
    # The default (mouth) mode: the mouth changed, the upper face and everything else did not.
    assert np.abs(synced[3][150:180, 100:160].astype(int) - source[3][150:180, 100:160]).mean() > 2
    assert all(np.array_equal(a[:125], b[:125]) for a, b in zip(synced, source))
    seg = tmp_path / "segment.mkv"
    rc = main(["segment", str(clip), str(voice), "--start", "0.08", "--end", "0.16", "-o", str(seg), "--lossless",
               *musetalk_args()])
    assert rc == 0
    revoiced = decode(seg)
    assert len(revoiced) == 6
    changed = [not np.array_equal(a, b) for a, b in zip(revoiced, source)]
    assert changed[2] and changed[3] and not changed[0] and not changed[5]


def test_batch(small: tuple[Path, Path], tmp_path: Path) -> None:
    clip, voice = small
    out = tmp_path / "batch"
    rc = main(["batch", "--audio", str(voice), "--videos", str(clip), "--root", str(clip.parent), "-o", str(out),
               "--no-zip", "-q", *musetalk_args()])
    assert rc == 0
    written = sorted(p for p in out.rglob("*.mp4"))
    assert len(written) == 1
    synced, source = decode(written[0]), decode(clip)
    assert len(synced) == 6
    assert np.abs(synced[3][150:180, 100:160].astype(int) - source[3][150:180, 100:160]).mean() > 2  # the mouth moved
    report = json.loads((out / "report.json").read_text())
    assert [item["status"] for item in report["items"]] == ["done"]


def test_missing_musetalk_files_say_where_they_go(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lipsync.models.folders.models_dirs", lambda: [tmp_path / "models"])
    rc = main([str(need(FIX / "inputs" / "face_2s.mkv")), str(FIX / "inputs" / "speech_2s.wav"),
               "-o", str(tmp_path / "o.mp4"), "--model", "musetalk", "--box", *BOX])
    err = capsys.readouterr().err
    assert rc == 1
    assert str(tmp_path / "models" / "musetalk") in err and "musetalkV15/unet.pth" in err
    assert "download musetalk" in err
