"""``python -m lipsync``: the file it writes plays (H.264 + AAC, right fps and duration, audio in
sync), errors are one line with exit code 1, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from conftest import CHECKPOINT, FIXTURE, MEDIA, need, sigint_default
from lipsync.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "lipsync", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def streams(path: Path) -> dict[str, dict[str, object]]:
    with av.open(str(path)) as c:
        out = {}
        for s in c.streams:
            dur = float(s.duration * s.time_base) if s.duration else None
            out[s.type] = {"codec": s.codec_context.name, "rate": s.codec_context.rate if s.type == "audio" else s.average_rate, "duration": dur, "frames": s.frames}
        return out


def test_cli_writes_a_playable_mp4(tmp_path: Path) -> None:
    out = tmp_path / "synced.mp4"
    res = run_cli(str(need(FIXTURE / "face.mp4")), str(need(FIXTURE / "speech_3s.wav")), "-o", str(out), "--checkpoint", str(need(CHECKPOINT)), "--box", "48", "232", "56", "200")
    assert res.returncode == 0, res.stderr
    info = streams(out)
    assert info["video"]["codec"] == "h264"
    assert info["audio"]["codec"] == "aac"
    assert info["video"]["rate"] == 25
    assert info["audio"]["rate"] == 16000
    assert info["video"]["frames"] == 75  # the whole 3.0 s of audio at 25 fps
    assert abs(info["video"]["duration"] - 3.0) <= 1 / 25
    assert abs(info["audio"]["duration"] - info["video"]["duration"]) <= 1 / 25  # in sync, cut to the video


def test_cli_detects_the_real_face(tmp_path: Path) -> None:
    out = tmp_path / "astronaut.mp4"
    res = run_cli(str(need(MEDIA / "astronaut_closeup_5s_silent.mp4")), str(need(FIXTURE / "speech_3s.wav")), "-o", str(out), "--checkpoint", str(need(CHECKPOINT)))
    assert res.returncode == 0, res.stderr
    assert "face in 75" in res.stderr
    assert streams(out)["video"]["frames"] == 75


def test_missing_video_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main([str(tmp_path / "nope.mp4"), str(need(FIXTURE / "speech_3s.wav")), "-o", str(tmp_path / "o.mp4"), "--checkpoint", str(need(CHECKPOINT)), "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert len(err.splitlines()) == 1 and "nope.mp4" in err
    assert not (tmp_path / "o.mp4").exists()


def test_missing_checkpoint_says_where_to_put_it(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIPSYNC_MODELS", str(tmp_path / "models"))
    monkeypatch.setattr("lipsync.models.folders.models_dirs", lambda: [tmp_path / "models"])
    rc = main([str(need(FIXTURE / "face.mp4")), str(need(FIXTURE / "speech_3s.wav")), "-o", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "wav2lip_gan.pth" in err and "models/wav2lip" in err and "non-commercial" in err


def test_lossless_needs_mkv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main([str(need(FIXTURE / "face.mp4")), str(need(FIXTURE / "speech_3s.wav")), "-o", str(tmp_path / "o.mp4"), "--lossless", "--checkpoint", str(need(CHECKPOINT))])
    assert rc == 1
    assert ".mkv" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT/SIGTERM semantics")
@pytest.mark.parametrize("sent, code, said", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
                         ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_leaves_no_partial_file(tmp_path: Path, sent: int, code: int, said: str) -> None:
    out = tmp_path / "interrupted.mp4"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "lipsync", str(need(MEDIA / "astronaut_closeup_5s_silent.mp4")), str(need(MEDIA / "speech_piper_16k_5s.wav")), "-o", str(out), "--checkpoint", str(need(CHECKPOINT)), "-q"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT, preexec_fn=sigint_default)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("lipsync-tmp" in p.name for p in tmp_path.iterdir()):
        time.sleep(0.05)
    assert any("lipsync-tmp" in p.name for p in tmp_path.iterdir()), "the job never started writing"
    proc.send_signal(sent)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"{said}: no output was written" in err
    assert list(tmp_path.iterdir()) == []  # neither the output nor a hidden temporary file


@pytest.mark.parametrize("command", [["run", "video.mp4", "voice.wav", "-o", "out.mp4"],
                                     ["batch", "--audio", "voice.wav", "--videos", "v.mp4", "-o", "out"]])
def test_a_cluster_flag_without_ray_says_what_to_install(tmp_path: Path, command: list[str]) -> None:
    argv = [*command[1:], "--cluster", "local:2"] if command[0] == "run" else [*command, "--cluster", "local:2"]
    for name in ("video.mp4", "v.mp4", "voice.wav"):
        (tmp_path / name).write_bytes(b"")
    code = ("import sys; sys.modules['ray'] = None; from lipsync.cli import main; "  # as if Ray were not installed
            f"sys.exit(main({argv!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert done.returncode == 1, done.stderr
    assert "pip install 'comfyui-resync[cluster]'" in done.stderr and "Traceback" not in done.stderr


def test_segments_without_a_cluster_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["v.mp4", "a.wav", "-o", str(tmp_path / "o.mp4"), "--segments", "3"])
    assert stop.value.code == 2 and "--cluster" in capsys.readouterr().err
