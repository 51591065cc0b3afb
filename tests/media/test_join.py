"""Joining video-only parts without re-encoding (lipsync.media.join): the joined stream decodes
to the parts' frames in order, timestamps continuous, every part starting on a keyframe, the
audio muxed once for the whole length."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from lipsync.errors import OutputError
from lipsync.media.join import join_parts
from lipsync.media.video import VideoWriter, iter_frames
from lipsync.types import Waveform


def frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    return [np.roll(base, i, axis=1) for i in range(n)]


def parts(folder: Path, suffix: str, fps: Fraction, lossless: bool, cuts=(0, 23, 40, 61)) -> list[Path]:
    made, every = [], frames(cuts[-1])
    for k, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
        path = folder / f"part{k}{suffix}"
        with VideoWriter(path, fps, lossless=lossless) as writer:
            for f in every[a:b]:
                writer.write(f)
        made.append(path)
    return made


@pytest.mark.parametrize("suffix, lossless, fps", [(".mp4", False, Fraction(25)), (".mp4", False, Fraction(30000, 1001)),
                                                   (".mkv", True, Fraction(30000, 1001))])
def test_the_join_decodes_to_the_parts_frames_with_continuous_timestamps(tmp_path: Path, suffix: str, lossless: bool,
                                                                          fps: Fraction) -> None:
    made = parts(tmp_path, suffix, fps, lossless)
    voice = Waveform(np.full((1, 48000 * 3), 0.1, np.float32), 48000)
    out = tmp_path / f"joined{suffix}"
    assert join_parts(made, out, fps, audio=voice, lossless=lossless) == 61
    expected = [f for p in made for f in iter_frames(p)]
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        decoded = list(container.decode(video))
    assert len(decoded) == 61
    joined = list(iter_frames(out))  # decoded the same way as the parts (their colour description)
    assert len(joined) == 61 and all(np.array_equal(j, e) for j, e in zip(joined, expected))
    assert [round(Fraction(d.pts) * d.time_base * fps) for d in decoded] == list(range(61))
    assert {0, 23, 40} <= {k for k, d in enumerate(decoded) if d.key_frame}
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        samples = sum(f.samples for f in container.decode(audio))
    expected_samples = round(Fraction(61) / fps * audio.codec_context.sample_rate)
    if lossless:
        assert samples == expected_samples
    else:  # AAC decodes whole 1024-sample frames
        assert 0 <= samples - expected_samples < 1024
    if lossless:
        assert all(np.array_equal(a, b) for a, b in zip(iter_frames(out), frames(61)))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_parts_of_different_sizes_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    made = parts(tmp_path, ".mp4", Fraction(25), False, cuts=(0, 10))
    with VideoWriter(tmp_path / "other.mp4", 25) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(OutputError, match="cannot be joined"):
        join_parts([*made, tmp_path / "other.mp4"], tmp_path / "out.mp4", 25)
    assert not (tmp_path / "out.mp4").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
