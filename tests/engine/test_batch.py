"""Batch production in the library (``lipsync.engine.batch.run``): items, isolation, resume, report, zip,
path safety, and the ``python -m lipsync batch`` command.

A stand-in network (returns the unmasked face) and a detector that finds a face in any frame that
is not black keep every job at milliseconds; the CLI test runs the real (random) checkpoint.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import wave
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from lipsync.engine.batch import run as batch_mod
from lipsync.engine.batch.run import (
    AUDIO_SUFFIXES,
    VIDEO_SUFFIXES,
    BatchItem,
    expand_sources,
    items_for_audios,
    items_for_videos,
    read_manifest,
    resolve_inside,
    run_batch,
    write_zip,
)
from lipsync.cli import main
from lipsync.errors import Cancelled, InputError, OutputError
from lipsync.engine.lipsync import LipSyncOptions
from lipsync.types import Detection, Waveform
from lipsync.media.video import VideoWriter, probe
from lipsync.models.wav2lip.generator import Wav2LipGenerator

H, W, FPS = 96, 128, 25


@Wav2LipGenerator


def stand_in(mel: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The network's signature; returns the unmasked input face."""
    return np.ascontiguousarray(faces[:, 3:6])


class FaceUnlessBlack:
    """A face at a fixed place in every frame that is not black."""

    name = "fake"

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return [] if frame.max() < 10 else [Detection(20, 10, 84, 70, 0.9)]


def write_video(path: Path, frames: int = 8, black: bool = False) -> Path:
    rng = np.random.default_rng(len(path.name))
    with VideoWriter(path, FPS) as writer:
        for _ in range(frames):
            writer.write(np.zeros((H, W, 3), np.uint8) if black else rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    return path


def write_wav(path: Path, seconds: float, freq: float = 220.0, rate: int = 16000) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    pcm = (0.4 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def voice(seconds: float = 0.4) -> Waveform:
    t = np.arange(round(seconds * 16000)) / 16000
    return Waveform((0.4 * np.sin(2 * np.pi * 220 * t))[None].astype(np.float32), 16000, "voice")


def run(items, out, **kwargs):
    return run_batch(items, out, stand_in, LipSyncOptions(), detector=FaceUnlessBlack(), **kwargs)


@pytest.fixture
def four_videos(tmp_path: Path) -> Path:
    """lectures/: three good clips and one corrupt file, plus a note that is not a video."""
    folder = tmp_path / "in" / "lectures"
    folder.mkdir(parents=True)
    for i in (1, 2, 10):
        write_video(folder / f"lecture_{i:d}.mp4")
    (folder / "lecture_3.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    (folder / "notes.txt").write_text("not a video")
    return folder


# --- paths


def test_paths_resolve_inside_the_root_and_nowhere_else(tmp_path: Path) -> None:
    root, other = tmp_path / "root", tmp_path / "other"
    (root / "sub").mkdir(parents=True)
    other.mkdir()
    (root / "escape").symlink_to(other, target_is_directory=True)
    assert resolve_inside(root, "sub/../sub/a.mp4") == (root / "sub" / "a.mp4").resolve()
    assert resolve_inside(root, str(root / "sub")) == (root / "sub").resolve()
    for bad in ("../other/a.mp4", str(other / "a.mp4"), "/etc/passwd", "escape/a.mp4", "sub/../../other", "a\0b"):
        with pytest.raises(InputError, match=r"outside|NUL"):
            resolve_inside(root, bad)
    assert resolve_inside([root, other], str(other / "a.mp4")) == (other / "a.mp4").resolve()
    assert resolve_inside([root, other], "a.mp4").parent == root.resolve()  # relative: the first folder


def test_sources_are_folders_globs_or_lists_in_natural_order(four_videos: Path, tmp_path: Path) -> None:
    root = tmp_path / "in"
    names = [p.name for p in expand_sources("lectures", root, VIDEO_SUFFIXES)]
    assert names == ["lecture_1.mp4", "lecture_2.mp4", "lecture_3.mp4", "lecture_10.mp4"]
    assert [p.name for p in expand_sources("lectures/lecture_1*.mp4", root, VIDEO_SUFFIXES)] == [
        "lecture_1.mp4", "lecture_10.mp4"]
    listed = expand_sources("# two clips\nlectures/lecture_2.mp4\n\nlectures/missing.mp4\n", root, VIDEO_SUFFIXES)
    assert [p.name for p in listed] == ["lecture_2.mp4", "missing.mp4"]  # a missing file fails its item later
    (root / "empty").mkdir()
    with pytest.raises(InputError, match="holds no audio files"):
        expand_sources("empty", root, AUDIO_SUFFIXES, "audio")
    with pytest.raises(InputError, match="No video file matches"):
        expand_sources("lectures/*.webm", root, VIDEO_SUFFIXES)
    for bad in ("../*.mp4", "/etc/*", "lectures/../../*"):
        with pytest.raises(InputError, match=r"outside|'\.\.'"):
            expand_sources(bad, root, VIDEO_SUFFIXES)


def test_manifests_pair_files_relative_to_themselves(tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "jobs").mkdir(parents=True)
    (root / "jobs" / "pairs.csv").write_text(
        "video,audio,output\nclips/a.mp4,voices/en.wav,Intro (EN).mp4\nclips/b.mp4,voices/ja.wav,\n"
        "clips/c.mp4,voices/ko.wav,../../etc/evil\n", encoding="utf-8")
    items = read_manifest(root / "jobs" / "pairs.csv", root)
    assert [i.output_name for i in items] == ["Intro (EN).mp4", "b.mp4", "etc_evil.mp4"]
    assert items[0].video == str((root / "jobs" / "clips" / "a.mp4").resolve())
    (root / "jobs" / "pairs.json").write_text(json.dumps({"items": [{"video": "a.mp4", "audio": "x.wav"},
                                                                    {"video": "a.mp4", "audio": "y.wav"}]}))
    assert [i.output_name for i in read_manifest(root / "jobs" / "pairs.json")] == ["a.mp4", "a_2.mp4"]
    (root / "jobs" / "bad.csv").write_text("clip,voice\na.mp4,x.wav\n")
    with pytest.raises(InputError, match="video,audio"):
        read_manifest(root / "jobs" / "bad.csv")
    (root / "jobs" / "out.json").write_text(json.dumps([{"video": "../../../elsewhere.mp4", "audio": "x.wav"}]))
    with pytest.raises(InputError, match="outside"):
        read_manifest(root / "jobs" / "out.json", root)


def test_outputs_are_named_after_what_varies() -> None:
    by_video = items_for_videos(["in/a.mp4", "other/a.mov", "in/b:c.mkv"], "voice.wav")
    assert [i.output_name for i in by_video] == ["a.mp4", "a_2.mp4", "b_c.mp4"]
    by_audio = items_for_audios("talk.mp4", ["en.wav", "ja.mp3", "ko.flac"])
    assert [(i.output_name, i.title) for i in by_audio] == [("en.mp4", "en.wav"), ("ja.mp4", "ja.mp3"),
                                                            ("ko.mp4", "ko.flac")]


def test_zip_members_are_plain_names(tmp_path: Path) -> None:
    good = tmp_path / "a.mp4"
    good.write_bytes(b"x")
    write_zip(tmp_path / "ok.zip", [good])
    for name in ("..", ".hidden", "a:b.mp4"):
        bad = tmp_path / name if name != ".." else tmp_path / "sub" / ".."
        with pytest.raises(OutputError, match="plain file names"):
            write_zip(tmp_path / "bad.zip", [bad])
    assert not (tmp_path / "bad.zip").exists() and not list(tmp_path.glob(".bad.zip*"))


# --- running


def test_four_videos_one_corrupt_make_three_outputs_a_report_and_a_zip_and_resume(four_videos: Path,
                                                                                   tmp_path: Path) -> None:
    """The issue's first "done means"."""
    videos = expand_sources("lectures", tmp_path / "in", VIDEO_SUFFIXES)
    items = items_for_videos(videos, voice(0.4))
    out = tmp_path / "out" / "course_ja"
    started, progress = [], []
    report = run(items, out, on_item_start=lambda i, n, item: started.append(f"item {i}/{n}: {item.title}"),
                 progress=lambda done, total: progress.append((done, total)))
    assert started == ["item 1/4: lecture_1.mp4", "item 2/4: lecture_2.mp4", "item 3/4: lecture_3.mp4",
                       "item 4/4: lecture_10.mp4"]
    assert [r.status for r in report.items] == ["done", "done", "failed", "done"]
    assert sorted(p.name for p in out.glob("*.mp4")) == ["lecture_1.mp4", "lecture_10.mp4", "lecture_2.mp4"]
    for path in report.outputs:
        info = probe(path)
        assert (info.frame_count, info.has_audio, info.duration) == (10, True, pytest.approx(0.4))
    bad = report.items[2]
    assert bad.video == "lecture_3.mp4" and "corrupt" in bad.error and str(four_videos) not in bad.error
    data = json.loads(report.report_json.read_text())
    assert data["summary"] == {"done": 3, "skipped": 0, "failed": 1, "cancelled": 0, "pending": 0}
    assert data["items"][2]["error"] == bad.error
    rows = list(csv.DictReader(report.report_csv.open(encoding="utf-8")))
    assert list(rows[0]) == ["item", "video", "audio", "status", "error", "output", "duration", "seconds", "frames",
                            "attempts", "worker", "node", "seen"]
    assert [(r["video"], r["status"], r["output"]) for r in rows] == [
        ("lecture_1.mp4", "done", "lecture_1.mp4"), ("lecture_2.mp4", "done", "lecture_2.mp4"),
        ("lecture_3.mp4", "failed", ""), ("lecture_10.mp4", "done", "lecture_10.mp4")]
    assert rows[0]["duration"] == "0.400" and float(rows[0]["seconds"]) > 0 and rows[0]["audio"] == "voice"
    assert report.zip_path == out / "course_ja.zip"
    with zipfile.ZipFile(report.zip_path) as archive:
        assert sorted(archive.namelist()) == ["lecture_1.mp4", "lecture_10.mp4", "lecture_2.mp4", "report.csv",
                                              "report.json"]
        assert archive.read("lecture_1.mp4") == (out / "lecture_1.mp4").read_bytes()
    assert progress[-1][0] == progress[-1][1] == 30 + 1  # frames of all items (the corrupt one counts 1)
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(progress))
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    print(f"\nfirst run: {report.summary()}")

    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4")}
    again = run(items, out)
    assert [r.status for r in again.items] == ["skipped", "skipped", "failed", "skipped"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4")} == stamps
    assert [r.frames for r in again.items] == [10, 10, 0, 10]
    with zipfile.ZipFile(again.zip_path) as archive:
        assert len(archive.namelist()) == 5
    print(f"second run: {again.summary().split(' — ')[0]}")


def test_one_video_three_voices_are_named_after_the_voices(tmp_path: Path) -> None:
    """The issue's second "done means"."""
    video = write_video(tmp_path / "talk.mp4", frames=5)
    voices = [write_wav(tmp_path / f"{lang}.wav", seconds, freq) for lang, seconds, freq in
              (("english", 0.4, 200), ("japanese", 0.6, 300), ("korean", 0.8, 400))]
    report = run(items_for_audios(video, voices), tmp_path / "out")
    assert [r.status for r in report.items] == ["done"] * 3
    assert [p.name for p in report.outputs] == ["english.mp4", "japanese.mp4", "korean.mp4"]
    assert [probe(p).frame_count for p in report.outputs] == [10, 15, 20]  # as long as each voice (ping-pong)


def test_a_video_without_a_face_or_a_missing_file_fails_only_its_item(tmp_path: Path) -> None:
    good = write_video(tmp_path / "good.mp4")
    dark = write_video(tmp_path / "dark.mp4", black=True)
    items = items_for_videos([dark, tmp_path / "gone.mp4", good], voice())
    report = run(items, tmp_path / "out")
    assert [r.status for r in report.items] == ["failed", "failed", "done"]
    assert report.items[0].error.startswith("No face was found in any of the 10 frames of dark.mp4")
    assert "does not exist" in report.items[1].error
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.mp4", "out.zip", "report.csv", "report.json"]


def test_an_unexpected_exception_in_one_item_leaves_the_others(tmp_path: Path) -> None:
    videos = [write_video(tmp_path / f"v{i}.mp4") for i in range(3)]
    current = {"item": 0}

    @Wav2LipGenerator

    def flaky(mel: np.ndarray, faces: np.ndarray) -> np.ndarray:
        if current["item"] == 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return stand_in(mel, faces)

    report = run_batch(items_for_videos(videos, voice()), tmp_path / "out", flaky, detector=FaceUnlessBlack(),
                       on_item_start=lambda i, n, item: current.update(item=i))
    assert [r.status for r in report.items] == ["done", "failed", "done"]
    assert report.items[1].error == "unexpected RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"


class HostInterrupt(Exception):
    """Stands in for the host's InterruptProcessingException (a plain Exception)."""


@pytest.mark.parametrize("where", ["should_stop", "progress", "cancelled"])
def test_stopping_stops_the_batch_instead_of_failing_an_item(tmp_path: Path, where: str) -> None:
    videos = [write_video(tmp_path / f"v{i}.mp4") for i in range(3)]
    items = items_for_videos(videos, voice())
    calls = {"items": 0}

    def on_start(index: int, count: int, item: BatchItem) -> None:
        calls["items"] = index

    def stop() -> bool:
        if calls["items"] == 2 and where == "should_stop":
            raise HostInterrupt()
        return calls["items"] == 2 and where == "cancelled"

    def progress(done: int, total: int) -> None:
        if calls["items"] == 2 and where == "progress":
            raise HostInterrupt()

    expected = Cancelled if where == "cancelled" else HostInterrupt
    with pytest.raises(expected):
        run(items, tmp_path / "out", should_stop=stop, progress=progress, on_item_start=on_start)
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [r["status"] for r in data["items"]] == ["done", "cancelled", "pending"]
    assert not (tmp_path / "out" / "out.zip").exists()
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mp4")) == ["v0.mp4"]
    resumed = run(items, tmp_path / "out")  # after the cancel: the first is kept, the rest made
    assert [r.status for r in resumed.items] == ["skipped", "done", "done"]


def test_a_changed_input_a_changed_setting_or_a_damaged_output_is_redone(tmp_path: Path) -> None:
    videos = [write_video(tmp_path / f"v{i}.mp4") for i in range(3)]
    items = items_for_videos(videos, voice())
    out = tmp_path / "out"
    run(items, out)
    write_video(videos[0], frames=12)  # re-exported in place
    (out / "v1.mp4").write_bytes((out / "v1.mp4").read_bytes()[:3000])  # damaged (not by us: we are atomic)
    assert [r.status for r in run(items, out).items] == ["done", "done", "skipped"]
    other = run_batch(items, out, stand_in, LipSyncOptions.of(mode="reference"), detector=FaceUnlessBlack())
    assert [r.status for r in other.items] == ["done"] * 3
    faster = run_batch(items, out, stand_in, LipSyncOptions.of(mode="reference", batch_size=2), detector=FaceUnlessBlack())
    assert [r.status for r in faster.items] == ["skipped"] * 3  # batch size does not change the result


def test_an_output_whose_input_broke_is_not_kept_as_current(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4")
    items = items_for_videos([video], voice())
    run(items, tmp_path / "out")
    video.write_bytes(b"broken now" * 100)  # the input is replaced by a bad file
    assert [r.status for r in run(items, tmp_path / "out").items] == ["failed"]
    assert not (tmp_path / "out" / "v.mp4").exists()  # the old output no longer matches its input
    assert [r.status for r in run(items, tmp_path / "out").items] == ["failed"]


def test_release_runs_between_items_and_the_voice_is_prepared_once(tmp_path: Path, monkeypatch) -> None:
    videos = [write_video(tmp_path / f"v{i}.mp4") for i in range(3)]
    prepared = []
    real = batch_mod.AudioCache.get

    def counting(self, audio, generator):
        value = real(self, audio, generator)
        prepared.append(id(value))
        return value

    monkeypatch.setattr(batch_mod.AudioCache, "get", counting)
    released = []
    run(items_for_videos(videos, voice()), tmp_path / "out", release=lambda: released.append(1))
    assert len(released) == 3 and len(prepared) == 3 and len(set(prepared)) == 1


def test_same_output_name_twice_is_refused(tmp_path: Path) -> None:
    items = [BatchItem("a.mp4", "x.wav", "same.mp4"), BatchItem("b.mp4", "y.wav", "SAME.mp4")]
    with pytest.raises(InputError, match="same output name"):
        run(items, tmp_path / "out")


# --- command line


def test_cli_batch_runs_reports_and_refuses_paths_outside_the_root(four_videos: Path, tmp_path: Path, checkpoint,
                                                                   monkeypatch, capsys) -> None:
    root = tmp_path / "in"
    write_wav(root / "voice.wav", 0.2)
    monkeypatch.chdir(root)
    args = ["batch", "--audio", "voice.wav", "--videos", "lectures/lecture_1*.mp4", "lectures/lecture_3.mp4",
            "-o", str(tmp_path / "out"), "--checkpoint", str(checkpoint), "--box", "10", "80", "20", "84",
            "--device", "cpu"]
    assert main(args) == 1  # one item failed
    err = capsys.readouterr().err
    assert "item 1/3: lecture_1.mp4" in err and "failed: item 3 (lecture_3.mp4, voice.wav)" in err
    assert "2 done, 0 skipped, 1 failed" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["lecture_1.mp4", "lecture_10.mp4", "out.zip",
                                                                     "report.csv", "report.json"]
    assert probe(tmp_path / "out" / "lecture_1.mp4").fps == Fraction(25)
    assert main([*args[:5], "-o", str(tmp_path / "out"), "--checkpoint", str(checkpoint), "--box", "10", "80", "20",
                 "84", "-q"]) == 0
    assert "0 done, 2 skipped, 0 failed" in capsys.readouterr().err
    assert main(["batch", "--audio", "../voice.wav", "--videos", "lectures", "-o", str(tmp_path / "o2"),
                 "--checkpoint", str(checkpoint)]) == 1
    assert "leads outside" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["batch", "--audio", "voice.wav", "--audios", "x.wav", "-o", "o"])
    assert usage.value.code == 2
