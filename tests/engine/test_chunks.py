"""How a job cuts its frames into chunks for the network: multiples of the chunk size, plus one
batch at each end of the job (``ramp_cuts``), the same for a range as for the whole run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import MEDIA, need

from lipsync.engine.lipsync import lipsync_video
from lipsync.engine.stages import NO_FACE, Item, chunked, ramp_cuts
from lipsync.models.wav2lip.generator import Wav2LipGenerator
from lipsync.options import LipSyncOptions


def items(first: int, stop: int) -> list[Item]:
    return [Item(k, np.zeros((1, 1, 3), np.uint8), NO_FACE) for k in range(first, stop)]


def lengths(chunks) -> list[int]:
    return [len(c) for c in chunks]


def test_chunks_break_at_multiples_of_the_size_and_at_the_cuts() -> None:
    assert lengths(chunked(items(0, 50), 16)) == [16, 16, 16, 2]
    assert lengths(chunked(items(0, 50), 16, cuts={8, 42})) == [8, 8, 16, 10, 6, 2]
    assert lengths(chunked(items(5, 50), 16, origin=5, cuts={13})) == [8, 8, 16, 13]
    assert [c[0].index for c in chunked(items(20, 50), 16, cuts={8, 42})] == [20, 32, 42, 48]  # a range: same edges


def test_the_ramp_is_one_batch_at_each_end_and_none_in_the_reference_paste() -> None:
    opts = LipSyncOptions.of(batch_size=8, chunk_batches=4)
    assert ramp_cuts(opts, 0, 250, 32) == {8, 242}
    assert ramp_cuts(opts, 100, 250, 32) == {108, 242}
    assert ramp_cuts(opts, 0, 12, 32) == {8}  # too short for a cut at the end too
    assert ramp_cuts(opts, 0, 250, 8) == frozenset()  # chunks of one batch already
    assert ramp_cuts(LipSyncOptions.of(batch_size=8, mode="reference"), 0, 250, 32) == frozenset()


class Recording(Wav2LipGenerator):
    """A stand-in network that remembers how many faces each chunk brought."""

    name = "recording"

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[int] = []

    def generate(self, crops_bgr, features, batch_size, **kwargs):  # noqa: ANN001, ANN003, ANN201
        self.chunks.append(len(crops_bgr))
        return super().generate(crops_bgr, features, batch_size, **kwargs)

    def __call__(self, mel: np.ndarray, faces: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(faces[:, 3:6], dtype=np.float32)


def test_a_job_starts_and_ends_with_one_batch(tmp_path: Path) -> None:
    video = need(MEDIA / "astronaut_closeup_5s_silent.mp4")
    audio = need(MEDIA / "speech_espeak_16k_5s.wav")
    gen = Recording()
    result = lipsync_video(video, audio, tmp_path / "out.mkv", gen,
                           LipSyncOptions.of(lossless=True, batch_size=4, chunk_batches=4))
    assert result.frames == 125 == sum(gen.chunks)
    assert gen.chunks == [4, 12, 16, 16, 16, 16, 16, 16, 9, 4]


def test_no_ramp_while_the_network_calibrates_on_its_first_chunk() -> None:
    class Calibrating:
        ready = False

    opts = LipSyncOptions.of(batch_size=8, chunk_batches=4)
    assert ramp_cuts(opts, 0, 250, 32, Calibrating()) == frozenset()
    Calibrating.ready = True
    assert ramp_cuts(opts, 0, 250, 32, Calibrating()) == {8, 242}
