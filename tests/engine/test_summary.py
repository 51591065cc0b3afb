"""What a job saw, in one line (issue #11, part 7): the speaker lock's report, the summary line
built from the probe, the voice's placement and the speaker, the CLI's ``-v`` and the batch
report's ``seen`` column."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
from conftest import CHECKPOINT, SHARED, need

from lipsync.engine.summary import describe_inputs
from lipsync.faces import FaceTracker
from lipsync.types import ColourInfo, Detection, VideoInfo

CASES = SHARED / "cases"


def _face(cx: float, cy: float, size: float) -> Detection:
    return Detection(cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2, 0.9)


def test_the_speaker_report_says_who_was_chosen_and_how_often_they_came_back() -> None:
    tracker = FaceTracker((360, 640), pads=(0, 0, 0, 0), smooth_window=1)
    for i in range(60):
        right = _face(480, 180, 120)
        dets = [right] if 20 <= i < 40 else [_face(160, 180, 126), right]
        tracker.push(dets)
    tracker.flush()
    report = tracker.speaker_report
    assert (report.frame, report.faces, report.rank, report.people, report.returns) == (0, 2, 0, 2, 1)
    line = report.describe()
    assert "1st from the left of 2" in line and "taken back 1 time" in line


def test_the_speaker_report_by_index_counts_from_the_left() -> None:
    tracker = FaceTracker((360, 640), pads=(0, 0, 0, 0), smooth_window=1, choice="index", face_index=1)
    tracker.push([_face(480, 180, 100), _face(160, 180, 130)])
    tracker.flush()
    assert tracker.speaker_report.rank == 1
    assert tracker.speaker_report.describe().startswith("the face at the chosen index (frame 0: 2nd from the left of 2)")


def test_no_face_is_said_plainly() -> None:
    tracker = FaceTracker((360, 640))
    tracker.push([])
    tracker.flush()
    assert tracker.speaker_report.describe() == "no face seen"


def test_the_summary_names_pixel_shape_colour_hdr_sound_and_speaker() -> None:
    info = VideoInfo(
        path="/x/phone.mov", width=192, height=256, fps=Fraction(30000, 1001), frame_count=10, duration=0.33,
        rotation=0, has_audio=True, audio_start=0.3, audio_gaps=((1.0, 0.2),), codec="hevc", is_still=False,
        sample_aspect_ratio=Fraction(4, 3),
        colour=ColourInfo(matrix="bt2020nc", range="limited", primaries="bt2020", transfer="arib-std-b67", bit_depth=10),
    )
    line = describe_inputs(info, ["the audio starts +0.100 s from the first video frame (silence before it)"],
                           "the largest face at the start (frame 0: 1st from the left of 1), kept")
    assert line.startswith("phone.mov: 192x256 with 4:3 pixels (shown 256x256); 29.97 fps; bt2020nc matrix")
    assert "HDR HLG" in line and "10-bit" in line
    assert "its own audio starts +0.300 s from the first frame, 1 hole in it" in line
    assert "voice: the audio starts +0.100 s" in line and line.endswith("speaker: the largest face at the start "
                                                                         "(frame 0: 1st from the left of 1), kept")
    assert "\n" not in line


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lipsync", *args], capture_output=True, text=True, timeout=600)


def test_cli_verbose_prints_what_was_seen_in_the_late_audio_and_two_faces_cases(tmp_path: Path) -> None:
    video = need(CASES / "two_faces_similar_size" / "two_faces.mp4")
    voice = need(CASES / "audio_track_starts_late" / "clapper_audio_late.mp4")
    res = _run(str(video), str(voice), "-o", str(tmp_path / "o.mp4"), "--checkpoint", str(need(CHECKPOINT)), "-v", "-q")
    assert res.returncode == 0, res.stderr
    seen = [line for line in res.stderr.splitlines() if line.startswith("seen: ")]
    assert len(seen) == 1, res.stderr
    assert "two_faces.mp4: 576x288" in seen[0]
    assert "voice: the audio starts +" in seen[0] and "(silence before it)" in seen[0]
    assert "speaker: the largest face at the start (frame 0: " in seen[0] and "of 2), kept" in seen[0]
    quiet = _run(str(video), str(voice), "-o", str(tmp_path / "p.mp4"), "--checkpoint", str(need(CHECKPOINT)), "-q")
    assert quiet.returncode == 0 and "seen: " not in quiet.stderr


def test_the_batch_report_carries_what_was_seen(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    video = need(CASES / "anamorphic_sar" / "anamorphic_sar43.mp4")
    (folder / "a.mp4").write_bytes(video.read_bytes())
    (folder / "a.wav").write_bytes(need(CASES / "anamorphic_sar" / "speech_2s.wav").read_bytes())
    out = tmp_path / "out"
    res = _run("batch", "--audio", str(folder / "a.wav"), "--videos", str(folder / "a.mp4"), "--root", str(tmp_path),
               "-o", str(out), "--checkpoint", str(need(CHECKPOINT)), "--no-zip", "-q")
    assert res.returncode == 0, res.stderr
    item = json.loads((out / "report.json").read_text())["items"][0]
    assert item["status"] == "done"
    assert item["seen"].startswith("a.mp4: 192x256 with 4:3 pixels (shown 256x256)")
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert rows[0]["seen"] == item["seen"]
    assert np.isfinite(item["duration"])


def test_a_face_index_beyond_the_faces_says_so_and_the_flag_alone_implies_the_choice(tmp_path: Path) -> None:
    video = need(CASES / "two_faces_similar_size" / "two_faces.mp4")
    voice = need(CASES / "two_faces_similar_size" / "speech_2s.wav")
    res = _run(str(video), str(voice), "-o", str(tmp_path / "o.mp4"), "--checkpoint", str(need(CHECKPOINT)),
               "--face-index", "5", "--frame-load-cap", "4", "--length-policy", "trim", "-v", "-q")
    assert res.returncode == 0, res.stderr
    assert "face index 5 needs 6 faces in a frame, at most 2 were seen" in res.stderr
    assert "lower the face index" in res.stderr and "no face was found" not in res.stderr


def test_a_batch_item_whose_face_index_is_beyond_the_faces_fails_and_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "two.mp4").write_bytes(need(CASES / "two_faces_similar_size" / "two_faces.mp4").read_bytes())
    (folder / "v.wav").write_bytes(need(CASES / "two_faces_similar_size" / "speech_2s.wav").read_bytes())
    out = tmp_path / "out"
    res = _run("batch", "--audio", str(folder / "v.wav"), "--videos", str(folder / "two.mp4"), "--root", str(tmp_path),
               "-o", str(out), "--checkpoint", str(need(CHECKPOINT)), "--no-zip", "-q", "--face-index", "5",
               "--frame-load-cap", "4", "--length-policy", "trim")
    item = json.loads((out / "report.json").read_text())["items"][0]
    assert item["status"] == "failed", res.stderr
    assert "face index 5 needs 6 faces in a frame, at most 2 were seen" in item["error"]
    assert "lower the face index" in item["error"]
    assert not [p for p in out.iterdir() if p.suffix == ".mp4"]


def test_the_face_point_flag_alone_picks_by_point() -> None:
    from lipsync.cli.options import COMMAND_GROUPS, options_from_args
    from lipsync.cli.run import parser

    argv = ["v.mp4", "a.wav", "-o", "o.mp4", "--face-point", "440", "150"]
    opts = options_from_args(parser().parse_args(argv), COMMAND_GROUPS["run"], argv)
    assert (opts.faces.face_choice, opts.faces.face_point) == ("point", (440, 150))
    argv = ["v.mp4", "a.wav", "-o", "o.mp4", "--face", "largest", "--face-point", "440", "150"]
    assert options_from_args(parser().parse_args(argv), COMMAND_GROUPS["run"], argv).faces.face_choice == "largest"
