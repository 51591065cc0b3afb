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


class TwoFaces:
    """Two faces that move with the frame's index (read from its top-left pixels), the larger one
    changing sides, none in every 13th frame: choice, smoothing and gaps carry state across ranges."""

    name = "two-faces"

    def detect(self, frame: np.ndarray) -> list:
        from lipsync.types import Detection

        i = int(frame[0, 0, 0])
        if i % 13 == 4:
            return []
        shift = 10.0 * np.sin(i / 5.0)
        grow = 20.0 if i < 30 else -20.0
        return [Detection(10 + shift, 40, 110 + shift + grow, 150 + grow, 0.9),
                Detection(140 - shift, 50 + shift, 240 - shift, 160 + shift, 0.8)]


def test_detecting_tracking_and_rendering_apart_equal_the_whole_run(tmp_path: Path) -> None:
    """What a cluster does with a long video, in one process: detection in ranges, one tracker
    over all of them, rendering each range with its faces (ping-pong past the video's end)."""
    from itertools import chain

    from fakes import numbered_frames, write_video

    from lipsync.engine.lipsync import detect_range, plan_job, prepare_audio
    from lipsync.engine.stages import track_detections
    from lipsync.media.video import index_keyframes

    video = write_video(tmp_path / "clip.mkv", numbered_frames(50))
    audio = need(MEDIA / "speech_espeak_16k_5s.wav")
    opts = LipSyncOptions.of(lossless=True, batch_size=4, chunk_batches=1, face_choice="closest",
                             missing_face="interpolate", detect_every=2).resolved()
    whole = lipsync_video(video, audio, tmp_path / "whole.mkv", AudioShade(), opts, detector=TwoFaces())
    prepared = prepare_audio(audio, AudioShade())
    plan = plan_job(video, prepared.features, opts)
    assert plan.frames == whole.frames == 125
    assert index_keyframes(video)
    ranges = [(0, 36), (36, 80), (80, 125)]  # chunk grid of 4; the last two lie past the video's 50 frames
    found = [detect_range(plan, opts, TwoFaces(), r) for r in ranges]
    faces = list(track_detections(chain.from_iterable(found), plan.size, opts.faces))
    parts = []
    for k, (a, b) in enumerate(ranges):
        out = tmp_path / f"part{k}.mkv"
        lipsync_video(video, prepared, out, AudioShade(), opts, frames=(a, b), faces=faces[a:b], audio_track=False)
        parts += read(out)
    assert np.array_equal(np.stack(parts), np.stack(read(whole.output)))
