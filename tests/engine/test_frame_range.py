"""A job over output frames [a, b) makes exactly the frames a whole run makes there (lossless),
with face detection and steady smoothing on the real-face clip: the engine's frame range, which
the cluster work builds on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import MEDIA, need
from fakes import read

from lipsync.engine.lipsync import lipsync_video
from lipsync.errors import InputError
from lipsync.models.wav2lip.generator import Wav2LipGenerator
from lipsync.options import LipSyncOptions


class AudioShade(Wav2LipGenerator):
    """A stand-in network whose face depends on the frame's crop and on its mel window, so a
    misplaced window or crop changes the pixels."""

    name = "audio-shade"

    def __call__(self, mel: np.ndarray, faces: np.ndarray) -> np.ndarray:
        level = 1.0 / (1.0 + np.exp(-mel.reshape(len(mel), -1).mean(axis=1)))
        return np.ascontiguousarray(faces[:, 3:6] * level[:, None, None, None], dtype=np.float32)


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    video = need(MEDIA / "astronaut_closeup_5s_silent.mp4")
    audio = need(MEDIA / "speech_espeak_16k_5s.wav")
    out = tmp_path_factory.mktemp("range") / "whole.mkv"
    result = lipsync_video(video, audio, out, AudioShade(), LipSyncOptions.of(lossless=True, batch_size=4))
    assert result.frames == 125 and result.frames_with_face == 125
    return video, audio, read(out)


@pytest.mark.parametrize("first, stop", [(0, 40), (37, 90), (64, 125), (100, 101)])
def test_a_frame_range_equals_the_same_frames_of_the_whole_run(whole, tmp_path: Path, first: int, stop: int) -> None:
    video, audio, frames = whole
    out = tmp_path / "part.mkv"
    result = lipsync_video(video, audio, out, AudioShade(), LipSyncOptions.of(lossless=True, batch_size=4),
                           frames=(first, stop))
    part = read(out)
    assert result.frames == stop - first == len(part)
    assert np.array_equal(part, frames[first:stop])
    assert not np.array_equal(part[0], read(video)[first])  # the range really was re-synced


def test_an_empty_or_outside_range_is_refused(whole, tmp_path: Path) -> None:
    video, audio, _ = whole
    for bad in ((10, 10), (-1, 5), (200, 300)):
        with pytest.raises(InputError, match="frame range"):
            lipsync_video(video, audio, tmp_path / "x.mkv", AudioShade(), LipSyncOptions.of(lossless=True),
                          frames=bad)
    assert not (tmp_path / "x.mkv").exists()
