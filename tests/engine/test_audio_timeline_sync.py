"""Sound stays on the picture through every job: the CLI (the video's own audio as the voice, and
a separate m4a), ``segment`` (the original sound outside the range) and batch, on clapper inputs
whose audio starts late, has a hole, or starts before the picture (``tests/clapper.py``).
Every beep must land on its flash in the output, within one frame.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from clapper import FPS, RATE, add_audio, assert_on_flashes, audio_at_pts, beep_times, beeps, clapper, flash_times, write_audio
from robust import FULL_BOX, Identity, run_cli

from lipsync.engine.batch.run import items_for_videos, run_batch
from lipsync.engine.lipsync import LipSyncOptions
from lipsync.engine.segment import revoice_segment
from lipsync.media.video import iter_frames
from lipsync.types import Waveform

BOX = ["--box", "0", "10000", "0", "10000"]


def assert_in_sync(output: Path, frames: int) -> None:
    written = list(iter_frames(output))
    assert len(written) == frames
    samples, rate = audio_at_pts(output)
    assert_on_flashes(beep_times(samples, rate), flash_times(written))


@pytest.mark.parametrize(
    "shape", [{"audio_from": 0.3}, {"drop": (1.8, 2.2)}, {"video_from": 0.48, "flashes": (1.0, 2.6, 3.4), "extra_beeps": (0.2,)}],
    ids=["late audio", "hole", "late video"],
)
def test_cli_with_the_videos_own_audio_keeps_every_beep_on_its_flash(tmp_path: Path, shape, capsys, monkeypatch) -> None:
    video = clapper(tmp_path / "clip.mp4", **shape)
    out = tmp_path / "out.mp4"
    rc, err = run_cli([video, video, "-o", out, "--checkpoint", "x.pth", *BOX], capsys, monkeypatch, Identity())
    assert rc == 0, err
    assert_in_sync(out, len(list(iter_frames(video))))  # the input's duration: 100 frames (88 for the late video)


def test_cli_with_an_exact_length_m4a_gives_exactly_its_frames(tmp_path: Path, capsys, monkeypatch) -> None:
    video = clapper(tmp_path / "clip.mp4", seconds=6.0)
    voice = tmp_path / "voice.m4a"
    with av.open(str(voice), "w", format="ipod") as container:
        write_audio(container, add_audio(container, 44100), beeps([1.4], 0.0, 5.0, 44100), 44100)
    out = tmp_path / "out.mp4"
    rc, err = run_cli([video, voice, "-o", out, "--checkpoint", "x.pth", *BOX], capsys, monkeypatch, Identity())
    assert rc == 0, err
    written = list(iter_frames(out))
    assert len(written) == 125  # 5.000 s at 25 fps, not 126 with the codec's padding
    samples, rate = audio_at_pts(out)
    assert beep_times(samples, rate) == pytest.approx([1.4], abs=1 / FPS)


def test_segment_keeps_the_original_sound_in_sync_outside_the_range(tmp_path: Path) -> None:
    video = clapper(tmp_path / "clip.mp4", audio_from=0.3, drop=(1.0, 1.2))
    t = np.arange(round(0.4 * RATE)) / RATE
    new = Waveform((0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)[None], RATE, "new")
    out = tmp_path / "seg.mp4"
    result = revoice_segment(video, new, out, Identity(), LipSyncOptions.of(box=FULL_BOX), start=1.8, end=2.2)
    assert result.frames == 100
    assert_in_sync(out, 100)  # the beeps at 0.6, 1.4, 2.6 and 3.4 s lie outside the range


def test_batch_keeps_every_beep_on_its_flash(tmp_path: Path) -> None:
    video = clapper(tmp_path / "clip.mp4", audio_from=0.3)
    report = run_batch(items_for_videos([video], video), tmp_path / "out", Identity(), LipSyncOptions.of(box=FULL_BOX),
                       make_zip=False)
    (item,) = report.items
    assert item.status == "done", item.error
    assert_in_sync(tmp_path / "out" / item.output, 100)
