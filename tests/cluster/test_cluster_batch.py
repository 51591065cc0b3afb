"""A batch on a real local Ray (2 CPUs, 2 workers) against the local batch: the same report and
the same frames, a worker killed mid-item, a corrupt item, a re-run that starts no worker."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import clustertools
from clustertools import DiesOnce, StillFace, tone, write_clip
from fakes import read

from lipsync.engine.batch.run import items_for_videos, run_batch
from lipsync.options import ClusterOptions, LipSyncOptions

pytestmark = pytest.mark.cluster

OPTIONS = LipSyncOptions.of(lossless=True, batch_size=4, chunk_batches=1)
TWO = ClusterOptions(cluster="local:2", workers=2, retries=2)
COMPARED = ("item", "video", "audio", "status", "error", "output", "duration", "frames", "key")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, ray_local) -> tuple[Path, list]:
    ray_local.cloudpickle.register_pickle_by_value(clustertools)
    root = tmp_path_factory.mktemp("batch")
    videos = [write_clip(root / f"lecture_{k}.mkv", 12 + 3 * k, seed=k) for k in range(1, 5)]
    return root, videos


def write_wav(path: Path, seconds: float) -> Path:
    import wave

    samples = (tone(seconds).samples[0] * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())
    return path


def rows(report) -> list[dict]:
    return [{k: v for k, v in asdict(r).items() if k in COMPARED} for r in report.items]


def test_four_items_on_two_workers_equal_the_local_batch(inputs, generator, tmp_path: Path) -> None:
    _, videos = inputs
    items = items_for_videos(videos, write_wav(tmp_path / "voice.wav", 0.8), suffix=".mkv")
    local = run_batch(items, tmp_path / "local", generator, OPTIONS, detector=StillFace())
    from lipsync.cluster import run_batch_on_cluster

    seen: list[tuple[int, int]] = []
    remote = run_batch_on_cluster(items, tmp_path / "remote", generator, OPTIONS, TWO, detector=StillFace(),
                                  progress=lambda d, t: seen.append((d, t)))
    assert [r.status for r in remote.items] == ["done"] * 4
    assert rows(remote) == rows(local)
    assert {r.worker for r in remote.items} == {"w0", "w1"} and all(r.node for r in remote.items)
    assert [r.attempts for r in remote.items] == [1] * 4 == [r.attempts for r in local.items]
    for a, b in zip(local.outputs, remote.outputs):
        assert np.array_equal(np.stack(read(a)), np.stack(read(b))), b.name
    assert seen[-1][0] == seen[-1][1] == sum(r.frames for r in local.items)
    saved = json.loads(remote.report_json.read_text())["items"]
    assert [(i["worker"], i["attempts"]) for i in saved] == [(r.worker, 1) for r in remote.items]
    assert remote.zip_path is not None and remote.zip_path.exists()
    assert not [p.name for p in (tmp_path / "remote").iterdir() if p.name.startswith(".")]


def test_a_killed_worker_is_restarted_and_its_item_retried(inputs, generator, tmp_path: Path) -> None:
    _, videos = inputs
    items = items_for_videos(videos, write_wav(tmp_path / "voice.wav", 0.8), suffix=".mkv")
    marker = tmp_path / "kill-once"
    marker.write_text("")
    from lipsync.cluster import run_batch_on_cluster

    report = run_batch_on_cluster(items, tmp_path / "out", generator, OPTIONS, TWO, detector=DiesOnce(marker))
    assert [r.status for r in report.items] == ["done"] * 4, report.summary()
    assert not marker.exists()
    assert sorted(r.attempts for r in report.items) == [1, 1, 1, 2]
    assert not [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # nothing left behind
    local = run_batch(items, tmp_path / "local", generator, OPTIONS, detector=StillFace())
    for a, b in zip(local.outputs, report.outputs):
        assert np.array_equal(np.stack(read(a)), np.stack(read(b))), b.name


def test_a_corrupt_item_fails_once_and_a_rerun_starts_no_worker(inputs, generator, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _, videos = inputs
    bad = tmp_path / "lecture_bad.mkv"
    bad.write_bytes(b"\x1a\x45\xdf\xa3 this is not a video" * 40)
    items = items_for_videos([videos[0], bad, videos[1], videos[2]], write_wav(tmp_path / "voice.wav", 0.8),
                             suffix=".mkv")
    from lipsync.cluster import batch as cluster_batch

    out = tmp_path / "out"
    report = cluster_batch.run_batch_on_cluster(items, out, generator, OPTIONS, TWO, detector=StillFace())
    assert [r.status for r in report.items] == ["done", "failed", "done", "done"]
    assert report.items[1].attempts == 1 and "lecture_bad.mkv" in report.items[1].error
    assert str(tmp_path) not in report.items[1].error

    def no_cluster(*_a, **_k):
        raise AssertionError("a re-run with nothing to do must not connect to the cluster")

    monkeypatch.setattr(cluster_batch, "connect", no_cluster)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.mkv")}
    items = [items[0], items[2], items[3]]
    again = cluster_batch.run_batch_on_cluster(items, out, generator, OPTIONS, TWO, detector=StillFace())
    assert [r.status for r in again.items] == ["skipped"] * 3
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.mkv")} == stamps


def test_ctrl_c_ends_the_workers_and_leaves_only_finished_outputs(inputs, generator, tmp_path: Path) -> None:
    _, videos = inputs
    items = items_for_videos(videos, write_wav(tmp_path / "voice.wav", 0.8), suffix=".mkv")
    from lipsync.cluster import run_batch_on_cluster

    def interrupt(done: int, total: int) -> None:
        if done > 0:
            raise KeyboardInterrupt  # what Ctrl-C raises in the driver while it waits for the workers

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_batch_on_cluster(items, out, generator, OPTIONS, TWO, detector=StillFace(), progress=interrupt)
    report = json.loads((out / "report.json").read_text())["items"]
    statuses = [i["status"] for i in report]
    assert "cancelled" in statuses and set(statuses) <= {"done", "cancelled"}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["report.csv", "report.json", *(i["output"] for i in report if i["status"] == "done")])
    for item in report:
        if item["status"] == "done":
            assert len(read(out / item["output"])) == item["frames"]
