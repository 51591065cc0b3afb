"""Segment re-voicing (``lipsync.engine.segment``): outside the range nothing changes, the joins are
seamless (no click in the sound, no jump in the face), inside the new voice drives the mouth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lipsync.media.audio import load_audio
from lipsync.cli import main
from lipsync.errors import InputError
from lipsync.engine.lipsync import LipSyncOptions
from lipsync.engine.segment import ramp_weight, revoice_segment, splice_audio
from lipsync.types import Detection, Waveform
from lipsync.media.video import VideoWriter, iter_frames
from lipsync.models.wav2lip.generator import Wav2LipGenerator

RATE, FPS, N = 48000, 25, 50  # a 2 s clip
START, END = 0.6, 1.2  # frames 15 … 29
LSB = 1 / 32768


@Wav2LipGenerator


def darker(mel: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """A stand-in network whose face is visibly different from the input (half as bright)."""
    return np.ascontiguousarray(faces[:, 3:6]) * 0.5


class Fixed:
    name = "fixed"

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return [Detection(20, 10, 84, 70, 0.9)]


def tone(freq: float, seconds: float, rate: int = RATE, amp: float = 0.8, phase: float = 0.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def textured(i: int) -> np.ndarray:
    """Smooth colour gradients that move a little from frame to frame, plus mild noise."""
    y, x = np.mgrid[0:96, 0:128]
    base = np.stack([x * 1.5 + i, y * 2.0 + 2 * i, (x + y) * 0.8], axis=-1)
    noise = np.random.default_rng(i).normal(0, 4, base.shape)
    return np.clip(base + noise + 20, 0, 255).astype(np.uint8)


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, list[np.ndarray], Waveform]:
    """A lossless clip (FFV1 + FLAC) with a loud stereo track."""
    original = Waveform(np.stack([tone(220, N / FPS), tone(330, N / FPS, amp=0.6)]), RATE, "original")
    frames = [textured(i) for i in range(N)]
    path = tmp_path / "talk.mkv"
    with VideoWriter(path, FPS, audio=original, lossless=True) as writer:
        for frame in frames:
            writer.write(frame)
    return path, frames, load_audio(path)


def max_step(x: np.ndarray) -> float:
    return float(np.abs(np.diff(x, axis=-1)).max())


def test_splice_keeps_the_outside_and_crossfades_inside_the_range() -> None:
    original = Waveform(np.stack([tone(220, 2.0), tone(330, 2.0)]), RATE, "original")
    new = Waveform(tone(500, 0.6, rate=16000, phase=1.0)[None], 16000, "new")  # mono, another rate
    out, warnings = splice_audio(original, new, START, END, crossfade_ms=15)
    s0, s1, fade = round(START * RATE), round(END * RATE), round(0.015 * RATE)
    assert out.sample_rate == RATE and out.samples.shape == original.samples.shape and warnings == []
    assert np.array_equal(out.samples[:, :s0], original.samples[:, :s0])
    assert np.array_equal(out.samples[:, s1:], original.samples[:, s1:])
    inside = out.samples[:, s0 + fade + 10 : s1 - fade - 10]
    expected = tone(500, 0.6, phase=1.0)[fade + 10 : s1 - s0 - fade - 10]
    assert np.allclose(inside, expected[None], atol=0.01)  # both channels: the new voice (resampled)
    natural = max(max_step(original.samples), max_step(tone(500, 0.6, phase=1.0)))
    joins = [out.samples[:, s0 - 50 : s0 + fade + 50], out.samples[:, s1 - fade - 50 : s1 + 50]]
    assert max(max_step(j) for j in joins) <= 1.5 * natural  # no click
    hard, _ = splice_audio(original, new, START, END, crossfade_ms=0)
    assert max_step(hard.samples[:, s0 - 2 : s0 + 2]) > 5 * natural  # what the crossfade prevents
    print(f"\nlargest step at the joins {max(max_step(j) for j in joins):.4f}, natural {natural:.4f}, "
          f"hard cut {max_step(hard.samples[:, s0 - 2 : s0 + 2]):.4f}")


def test_splice_cuts_a_long_voice_with_a_warning_and_pads_a_short_one() -> None:
    original = Waveform(tone(220, 1.0)[None], RATE, "original")
    long_voice = Waveform(tone(500, 1.0)[None], RATE, "new")
    out, warnings = splice_audio(original, long_voice, 0.2, 0.5)
    assert out.num_samples == RATE and "last 0.70 s were cut" in warnings[0] and "end = start + 1.00" in warnings[0]
    short, warnings = splice_audio(original, Waveform(tone(500, 0.1)[None], RATE, "new"), 0.2, 0.5)
    assert warnings == [] and np.all(short.samples[0, round(0.31 * RATE) : round(0.48 * RATE)] == 0)
    past_end, _ = splice_audio(original, long_voice, 0.8, 1.3)  # the range runs past the original
    assert past_end.num_samples == round(1.3 * RATE)
    with pytest.raises(InputError, match="empty or negative"):
        splice_audio(original, long_voice, 0.5, 0.5)


def test_ramp_rises_and_falls_over_the_joins() -> None:
    assert [ramp_weight(k, 10, 3) for k in range(10)] == [0.25, 0.5, 0.75, 1, 1, 1, 1, 0.75, 0.5, 0.25]
    assert ramp_weight(0, 10, 0) == 1.0


def test_lossless_revoice_changes_only_the_range(source, tmp_path: Path) -> None:
    path, frames, original = source
    new = Waveform(tone(500, END - START, phase=1.0)[None], RATE, "new")
    out = tmp_path / "fixed.mkv"
    result = revoice_segment(path, new, out, darker, LipSyncOptions.of(lossless=True), start=START, end=END,
                             detector=Fixed(), ramp_frames=3)
    assert (result.frames, result.first_frame, result.end_frame, result.frames_with_face) == (50, 15, 30, 15)
    written = list(iter_frames(out))
    same = [np.array_equal(a, b) for a, b in zip(frames, written)]
    assert same == [True] * 15 + [False] * 15 + [True] * 20  # bit-exact outside [start, end)
    change = [float(np.abs(a.astype(int) - b).mean()) for a, b in zip(frames[15:30], written[15:30])]
    assert change[0] < change[1] < change[2] < change[3] == pytest.approx(change[7], rel=0.05)  # ramps in
    assert change[14] < change[13] < change[12] < change[11]  # and out
    audio = load_audio(out)
    s0, s1 = round(START * RATE), round(END * RATE)
    # FLAC stores 16 bits: the original decodes as n/32768 and is stored again as round(x*32767), so
    # samples above half scale may move by one step (lipsync.media._encode; outside this module).
    assert np.abs(audio.samples[:, :s0] - original.samples[:, :s0]).max() <= LSB * 1.01
    assert np.abs(audio.samples[:, s1:] - original.samples[:, s1 : audio.num_samples]).max() <= LSB * 1.01
    natural = max(max_step(original.samples), max_step(new.samples))
    assert max_step(audio.samples[:, s0 - 100 : s0 + 1000]) <= 1.5 * natural
    assert max_step(audio.samples[:, s1 - 1000 : s1 + 100]) <= 1.5 * natural


def test_h264_revoice_reencodes_the_outside_closely(source, tmp_path: Path) -> None:
    path, frames, original = source
    new = Waveform(tone(500, END - START)[None], RATE, "new")
    out = tmp_path / "fixed.mp4"
    revoice_segment(path, new, out, darker, LipSyncOptions(), start=START, end=END, detector=Fixed())
    written = list(iter_frames(out))
    assert len(written) == N
    assert max(np.abs(written[k].astype(int) - frames[k]).mean() for k in (0, 14, 30, 49)) < 4  # H.264 crf 18
    audio = load_audio(out)
    s0 = round(START * RATE)
    head = slice(round(0.1 * RATE), s0 - round(0.05 * RATE))
    assert np.sqrt(np.mean((audio.samples[:, head] - original.samples[:, head]) ** 2)) < 0.02  # AAC


def test_a_range_past_the_end_is_refused(source, tmp_path: Path) -> None:
    path, _, _ = source
    with pytest.raises(InputError, match=r"only 2\.00 s long"):
        revoice_segment(path, Waveform(tone(500, 0.2)[None], RATE, "new"), tmp_path / "x.mkv", darker,
                        start=2.5, end=3.0, detector=Fixed())
    assert not (tmp_path / "x.mkv").exists()


def test_cli_segment(source, tmp_path: Path, checkpoint, capsys) -> None:
    path, frames, _ = source
    voice = tmp_path / "voice.wav"
    with VideoWriter(tmp_path / "voice.mkv", FPS, audio=Waveform(tone(300, 0.4)[None], RATE, "v"), lossless=True) as w:
        for _ in range(10):
            w.write(frames[0])
    voice = tmp_path / "voice.mkv"  # any file with an audio track
    out = tmp_path / "cli.mkv"
    code = main(["segment", str(path), str(voice), "--start", "0.4", "--end", "0.8", "-o", str(out), "--lossless",
                 "--checkpoint", str(checkpoint), "--box", "10", "80", "20", "84", "--device", "cpu"])
    assert code == 0 and "frames 10–19 of 50 re-synced" in capsys.readouterr().err
    written = list(iter_frames(out))
    assert np.array_equal(written[9], frames[9]) and np.array_equal(written[20], frames[20])


def test_cli_segment_quiet(source, tmp_path: Path, checkpoint, capsys) -> None:
    path, _, _ = source
    out = tmp_path / "quiet.mkv"
    code = main(["segment", str(path), str(path), "--start", "0.4", "--end", "0.8", "-o", str(out), "--lossless",
                 "--checkpoint", str(checkpoint), "--box", "10", "80", "20", "84", "--device", "cpu", "-q"])
    assert code == 0 and out.is_file() and "wrote" not in capsys.readouterr().err
