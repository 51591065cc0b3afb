"""The AUDIO and VIDEO the nodes emit keep the file's own timeline: Load Video's AUDIO starts
with silence when the track starts late, loses what plays before the first frame, is exactly as
long as the frames; Save Video and Re-Voice Segment keep every beep on its flash
(clapper inputs: ``tests/clapper.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from clapper import FPS, RATE, assert_on_flashes, audio_at_pts, beep_times, clapper, flash_times
from fakehost import host  # noqa: F401  (fixture)
from test_nodes_lipsync import decode
from test_nodes_segment import pack  # noqa: F401  (fixture)

from lipsync.types import Waveform


def images_flashes(images: torch.Tensor, fps: float = FPS) -> list[float]:
    return flash_times([images[i].numpy() * 255 for i in range(images.shape[0])], fps)


@pytest.mark.parametrize(
    "shape", [{"audio_from": 0.3}, {"drop": (3.3, 4.0), "flashes": (0.6, 1.4, 2.6)},
              {"video_from": 0.48, "flashes": (1.0, 2.6, 3.4), "extra_beeps": (0.2,)}],
    ids=["late audio", "audio ends early", "late video"],
)
def test_load_video_audio_is_on_the_frames_timeline_and_as_long_as_them(host, shape) -> None:
    clapper(host.input / "clap.mp4", **shape)
    images, audio, fps, count = host.run("ReSyncLoadVideo", video="clap.mp4").args
    samples = audio["waveform"][0].numpy()
    assert audio["sample_rate"] == RATE and samples.shape[1] == round(count / fps * RATE)
    assert_on_flashes(beep_times(samples, RATE), images_flashes(images, fps))


def test_load_video_skipping_frames_keeps_the_sync(host) -> None:
    clapper(host.input / "clap.mp4", audio_from=0.3)
    images, audio, fps, count = host.run("ReSyncLoadVideo", video="clap.mp4", skip_first_frames=20).args
    samples = audio["waveform"][0].numpy()
    assert count == 80 and samples.shape[1] == round(80 / FPS * RATE)
    assert_on_flashes(beep_times(samples, RATE), images_flashes(images, fps))


def test_load_then_save_video_keeps_every_beep_on_its_flash(host) -> None:
    clapper(host.input / "clap.mp4", audio_from=0.3, drop=(1.8, 2.2))
    images, audio, fps, _ = host.run("ReSyncLoadVideo", video="clap.mp4").args
    _, path = host.run("ReSyncSaveVideo", images=images, fps=fps, filename_prefix="ReSync/clap", audio=audio).args
    samples, rate = audio_at_pts(Path(path))
    assert_on_flashes(beep_times(samples, rate), flash_times(decode(Path(path))))


def test_revoice_segment_keeps_the_original_sound_in_sync(pack) -> None:
    clapper(pack.input / "clap.mp4", audio_from=0.3, size=192)
    new = Waveform(np.zeros((1, round(0.4 * RATE)), np.float32), RATE, "quiet")
    _, path = pack.run(
        "ReSyncRevoiceSegment", video="clap.mp4", audio={"waveform": torch.from_numpy(new.samples)[None], "sample_rate": RATE},
        model=pack.model, start_s=1.8, end_s=2.2, filename_prefix="ReSync/revoice",
    ).args
    frames = decode(Path(path))
    assert len(frames) == 100
    samples, rate = audio_at_pts(Path(path))
    assert_on_flashes(beep_times(samples, rate), flash_times(frames))
