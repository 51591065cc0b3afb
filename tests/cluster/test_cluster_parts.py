"""The cluster's pieces that need no Ray: frame ranges on the chunk grid, the worker count, the
options' checks, the weights round trip; and (with Ray) a worker that refuses clearly."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lipsync.cluster._ray import library_fingerprint, worker_count
from lipsync.cluster.video import split_frames
from lipsync.cluster.weights import pack_generator, unpack_generator
from lipsync.errors import ClusterError, InputError
from lipsync.models.wav2lip.generator import Wav2LipGenerator
from lipsync.options import ClusterOptions, LipSyncOptions


@pytest.mark.parametrize("frames, parts, chunk", [(120, 3, 8), (1000, 7, 32), (10, 4, 8), (64, 2, 32), (5, 3, 32)])
def test_ranges_cover_every_frame_once_and_start_on_the_chunk_grid(frames: int, parts: int, chunk: int) -> None:
    ranges = split_frames(frames, parts, chunk)
    assert ranges[0][0] == 0 and ranges[-1][1] == frames
    assert all(a < b for a, b in ranges) and all(b == c for (_, b), (c, _) in zip(ranges, ranges[1:]))
    assert all(a % chunk == 0 for a, _ in ranges)
    assert len(ranges) <= parts
    if frames >= parts * chunk:
        assert len(ranges) == parts


def test_the_worker_count_fits_the_cluster() -> None:
    ray = SimpleNamespace(cluster_resources=lambda: {"CPU": 8.0, "GPU": 1.0})
    assert worker_count(ray, ClusterOptions(), 100) == 8
    assert worker_count(ray, ClusterOptions(cpus_per_worker=3), 100) == 2
    assert worker_count(ray, ClusterOptions(gpus_per_worker=0.25), 100) == 4
    assert worker_count(ray, ClusterOptions(workers=6), 3) == 3  # never more than the work
    with pytest.raises(ClusterError, match="1 GPUs; one worker needs 2"):
        worker_count(ray, ClusterOptions(gpus_per_worker=2), 5)


@pytest.mark.parametrize("bad", [ClusterOptions(cluster="local:x"), ClusterOptions(cluster="local:0"),
                                 ClusterOptions(workers=-1), ClusterOptions(cpus_per_worker=0)])
def test_bad_cluster_options_are_refused(bad: ClusterOptions) -> None:
    with pytest.raises(InputError):
        bad.check()


def test_weights_travel_as_safetensors_and_give_the_same_faces(generator) -> None:
    payload = pack_generator(generator)
    assert payload.weights[:8] != b"\x80\x02\x8a\x0a" and len(payload.weights) > 100_000_000  # tensors, no pickle
    again = unpack_generator(payload, "cpu")
    rng = np.random.default_rng(0)
    mel, faces = rng.standard_normal((2, 80, 16), np.float32), rng.random((2, 6, 96, 96), np.float32)
    assert np.array_equal(again(mel, faces), generator(mel, faces))
    with pytest.raises(InputError, match="torch"):
        pack_generator(Wav2LipGenerator(lambda m, f: f[:, 3:]))


def test_the_fingerprint_names_the_version_and_the_source() -> None:
    import lipsync

    version, digest = library_fingerprint().split("+")
    assert version == lipsync.__version__ and len(digest) == 12


@pytest.mark.cluster
def test_a_worker_with_other_code_or_without_the_storage_refuses(ray_local, generator, tmp_path: Path) -> None:
    from lipsync.cluster.pool import Pool
    from lipsync.cluster.worker import WorkerSetup

    opts, cluster = LipSyncOptions(), ClusterOptions(cluster="local:2", workers=1)
    payload = pack_generator(generator)
    other = WorkerSetup(opts, "0.0.1+000000000000", (), str(tmp_path))
    with pytest.raises(ClusterError, match=r"runs lipsync .* the driver 0\.0\.1\+000000000000: install the same"):
        Pool(ray_local, cluster, other, payload, 1).__enter__()
    unseen = WorkerSetup(opts, library_fingerprint(), ("/mnt/nowhere/talk.mp4",), str(tmp_path))
    with pytest.raises(ClusterError, match="does not see /mnt/nowhere/talk.mp4: inputs and outputs must lie on"):
        Pool(ray_local, cluster, unseen, payload, 1).__enter__()
