"""One 12 s clip in K = 3 frame ranges on 2 workers (real local Ray) against the single run:
frame for frame (lossless) with a fixed box and with detection + smoothing + the face choice;
with H.264 the joined file has every frame, continuous timestamps and a keyframe at each part."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import clustertools
from clustertools import TwoSpeakers, tone, write_clip
from fakes import read

from lipsync.engine.lipsync import lipsync_video
from lipsync.engine.stages import buffer_sizes
from lipsync.options import ClusterOptions, LipSyncOptions
from lipsync.types import Box

pytestmark = pytest.mark.cluster

FPS = 10
SECONDS = 12
K3 = ClusterOptions(cluster="local:2", workers=2, segments=3)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, ray_local) -> tuple[Path, object]:
    ray_local.cloudpickle.register_pickle_by_value(clustertools)
    root = tmp_path_factory.mktemp("video")
    video = write_clip(root / "talk.mkv", 70, fps=FPS, seed=3)  # shorter than the voice: ping-pong
    return video, tone(SECONDS)


CASES = {
    "fixed box": LipSyncOptions.of(lossless=True, batch_size=4, chunk_batches=2, box=Box(20, 110, 24, 104)),
    "detection": LipSyncOptions.of(lossless=True, batch_size=4, chunk_batches=2, face_choice="closest",
                                   smoothing="steady", missing_face="interpolate", detect_every=2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_three_segments_on_two_workers_equal_the_single_run(clip, generator, tmp_path: Path, case: str) -> None:
    video, voice = clip
    options = CASES[case]
    single = lipsync_video(video, voice, tmp_path / "single.mkv", generator, options, detector=TwoSpeakers())
    from lipsync.cluster import lipsync_video_on_cluster

    seen: list[tuple[int, int]] = []
    joined = lipsync_video_on_cluster(video, voice, tmp_path / "joined.mkv", generator, options, K3,
                                      detector=TwoSpeakers(), progress=lambda d, t: seen.append((d, t)))
    assert joined.frames == single.frames == FPS * SECONDS
    assert joined.frames_with_face == single.frames_with_face > 0
    a, b = np.stack(read(single.output)), np.stack(read(joined.output))
    assert a.shape == b.shape and np.array_equal(a, b)
    assert seen[-1][0] == seen[-1][1]
    with av.open(str(joined.output)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "flac"
        samples = sum(frame.samples for frame in container.decode(audio))
    assert samples == audio.codec_context.sample_rate * SECONDS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["joined.mkv", "single.mkv"]  # no part left


def test_the_h264_join_is_continuous_with_a_keyframe_at_every_part(clip, generator, tmp_path: Path) -> None:
    video, voice = clip
    options = LipSyncOptions.of(batch_size=4, chunk_batches=2, box=Box(20, 110, 24, 104))
    single = lipsync_video(video, voice, tmp_path / "single.mp4", generator, options)
    from lipsync.cluster import lipsync_video_on_cluster
    from lipsync.cluster.video import split_frames

    joined = lipsync_video_on_cluster(video, voice, tmp_path / "joined.mp4", generator, options, K3)
    chunk, _ = buffer_sizes(options, (128, 128))
    starts = [a for a, _ in split_frames(FPS * SECONDS, 3, chunk)]
    assert len(starts) == 3 and all(s % chunk == 0 for s in starts)
    with av.open(str(joined.output)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    slots = [round(Fraction(f.pts) * f.time_base * FPS) for f in frames]
    assert slots == list(range(FPS * SECONDS))  # every frame once, in order, one frame duration apart
    assert [k for k, f in enumerate(frames) if f.key_frame][: len(starts)] == starts
    ours = np.stack(read(joined.output)).astype(np.int16)  # decoded as the single run's (its colour description)
    theirs = np.stack(read(single.output)).astype(np.int16)
    # two encodes of the same frames (noise is hard for x264: ~1.7 levels apart); a frame out of
    # place would be ~80 levels off
    assert np.abs(ours - theirs).mean() < 4
