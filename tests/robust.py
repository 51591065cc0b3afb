"""Helpers of the robustness matrix (``test_robust_*.py``): media makers, quick pipeline runs, the
CLI run in-process with a fake network, and the checks every failure must pass.

A failure "fails well" when: the error is one of the library's, its message is one line that
names the file and says what to do, nothing exists under the output name and no temporary file
is left in the output folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import MEDIA, need
from fakes import Recorder

from lipsync.engine.lipsync import LipSyncOptions, LipSyncResult, lipsync_video
from lipsync.types import Box, Waveform
from lipsync.media.video import TEMP_MARKER, iter_frames, probe
from lipsync.models.wav2lip.generator import Wav2LipGenerator

__all__ = [
    "Identity",
    "Painter",
    "assert_cli_fails",
    "assert_nothing_written",
    "face_clip",
    "leftovers",
    "make_clip",
    "output_streams",
    "run_cli",
    "sync",
    "tone",
]

FULL_BOX = Box(0, 10_000, 0, 10_000)
"""A fixed box clipped to the whole frame: no detection needed."""


class Identity(Wav2LipGenerator):
    """A network that returns the unmasked face and keeps nothing (for long runs)."""

    name = "identity"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, mel: np.ndarray, faces: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.ascontiguousarray(faces[:, 3:6])


class Painter(Wav2LipGenerator):
    """A network that paints every generated face pure green, so the frames it touched show."""

    name = "painter"

    def __call__(self, mel: np.ndarray, faces: np.ndarray) -> np.ndarray:
        out = np.zeros((len(faces), 3, 96, 96), np.float32)
        out[:, 1] = 1.0  # BGR: green
        return out


def green_mask(frame: np.ndarray) -> np.ndarray:
    """Where ``Painter``'s green landed (lossy coding leaves it close to pure green)."""
    r, g, b = (frame[..., c].astype(np.int16) for c in range(3))
    return (g > 180) & (r < 90) & (b < 90)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TEMP_MARKER in p.name)


def assert_nothing_written(output: Path) -> None:
    assert not output.exists(), f"{output} was written"
    assert leftovers(output.parent) == [], leftovers(output.parent)


def assert_one_line(message: str, *words: str) -> None:
    assert message.count("\n") == 0 and "Traceback" not in message, message
    for word in words:
        assert word in message, f"{word!r} not in: {message}"


def make_clip(
    path: Path,
    frames: Sequence[np.ndarray],
    fps: Fraction | int = 25,
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    src_format: str = "rgb24",
    rotation: float | None = None,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    faststart: bool = False,
    audio_rate: int | None = None,
) -> Path:
    """A small video written with PyAV, with the odd properties users' files have."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        codec_options = {"preset": "ultrafast"} if codec == "libx264" else {}
        stream = out.add_stream(codec, rate=Fraction(fps), options=codec_options)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        if time_base is not None:
            stream.codec_context.time_base = time_base
            stream.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = out.add_stream("aac", rate=audio_rate, layout="mono") if audio_rate else None
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format=src_format)
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if sound is not None:
            samples = np.zeros((1, 1024), np.float32)
            for k in range(int(len(frames) / float(fps) * audio_rate / 1024) + 1):
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = audio_rate, k * 1024
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path


def tone(seconds: float, rate: int = 16000, channels: int = 1, level: float = 0.3) -> Waveform:
    t = np.arange(int(seconds * rate)) / rate
    mono = (level * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2).astype(np.float32)
    return Waveform(np.repeat(mono[None], channels, axis=0), rate)


def sync(
    video: Path,
    audio: Path | Waveform,
    output: Path,
    network: object | None = None,
    detector: object | None = None,
    **options: object,
) -> LipSyncResult:
    """``lipsync_video`` with a fake network; a fixed whole-frame box unless a detector is given."""
    if detector is None and "box" not in options and "detector" not in options:
        options["box"] = FULL_BOX
    return lipsync_video(video, audio, output, network or Recorder(), LipSyncOptions.of(**options), detector=detector)  # type: ignore[arg-type]


def output_streams(path: Path) -> dict[str, object]:
    """What a player sees in a written file: size, fps, frames, both durations (Matroska has no
    per-stream durations: there they are decoded), audio rate and channels."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        out: dict[str, object] = {
            "width": video.width,
            "height": video.height,
            "fps": video.average_rate,
            "frames": frames,
            "video_s": frames / float(video.average_rate),
        }
    with av.open(str(path)) as container:
        if container.streams.audio:
            audio = container.streams.audio[0]
            if audio.duration:  # MP4: the edit list leaves out the encoder's padding
                out["audio_s"] = float(audio.duration * audio.time_base)
            else:
                out["audio_s"] = sum(frame.samples for frame in container.decode(audio)) / audio.rate
            out["audio_rate"] = audio.rate
            out["channels"] = audio.codec_context.layout.nb_channels
    return out


def run_cli(
    args: Iterable[str | Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    network: object | None = None,
) -> tuple[int, str]:
    """``python -m lipsync ARGS`` in this process; with ``network`` the checkpoint is not loaded
    (``--checkpoint`` may name anything) and the network stands in for it."""
    from lipsync.cli import main

    if network is not None:
        monkeypatch.setattr("lipsync.models.wav2lip.generator.load_generator", lambda *a, **k: network)
    capsys.readouterr()
    rc = main([str(a) for a in args] + ["-q"])
    return rc, capsys.readouterr().err.strip()


def assert_cli_fails(
    video: Path,
    audio: Path,
    output: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *words: str,
    extra: Sequence[str] = ("--box", "0", "10000", "0", "10000"),
    network: object | None = None,
    checkpoint: str = "fake.pth",
) -> str:
    """The CLI exits 1 with one line on stderr holding ``words``; nothing is written."""
    rc, err = run_cli(
        [video, audio, "-o", output, "--checkpoint", checkpoint, *extra], capsys, monkeypatch, network or Identity()
    )
    assert rc == 1, err
    assert err.startswith("error: "), err
    assert_one_line(err, *words)
    assert_nothing_written(output)
    return err


_FACES: dict[int, list[np.ndarray]] = {}


def face_clip(n: int = 10) -> list[np.ndarray]:
    """The first ``n`` frames of the real face clip (512x512 RGB), decoded once per session."""
    if n not in _FACES:
        path = need(MEDIA / "astronaut_closeup_5s_silent.mp4")
        _FACES[n] = list(iter_frames(path, frame_load_cap=n))
    return _FACES[n]


def frame_count(path: Path) -> int:
    return probe(path).frame_count
