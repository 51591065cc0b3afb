"""The command line hands work to the cluster: ``batch --cluster`` and ``VIDEO AUDIO --cluster
--segments K`` (the session's local Ray, 2 CPUs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clustertools import write_clip
from conftest import CHECKPOINT, need
from fakes import read

from lipsync.cli import main
from lipsync.models.wav2lip import cpu

pytestmark = pytest.mark.cluster


def wav(path: Path, seconds: float) -> Path:
    import wave

    t = np.arange(int(seconds * 16000)) / 16000
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.sin(2 * np.pi * 200 * t) * 8000).astype("<i2").tobytes())
    return path


def test_cli_batch_and_long_video_on_the_cluster(ray_local, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoint = need(CHECKPOINT)
    monkeypatch.chdir(tmp_path)
    for k in (1, 2):
        write_clip(tmp_path / f"clip_{k}.mkv", 10, seed=k)
    wav(tmp_path / "voice.wav", 0.6)
    box = ["--box", "20", "110", "24", "104", "--checkpoint", str(checkpoint), "--device", "cpu"]
    code = main(["batch", "--audio", "voice.wav", "--videos", "clip_1.mkv", "clip_2.mkv", "-o", "out", "--cluster",
                 "local:2", "--workers", "2", "-q", *box])
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [(i["status"], i["attempts"]) for i in report["items"]] == [("done", 1), ("done", 1)]
    assert (tmp_path / "out" / "out.zip").exists()

    code = main(["clip_1.mkv", "voice.wav", "-o", "split.mkv", "--lossless", "--cluster", "local:2", "--workers", "2",
                 "--segments", "2", "--batch-size", "4", "--chunk-batches", "1", "-q", *box])
    assert code == 0
    # the cluster's workers run the network as trained (torch float32): the single run in exact precision
    # on torch too (the command line's exact runs OpenVINO f32 where it is installed: within 1e-4, not bit for bit)
    monkeypatch.setattr(cpu, "_openvino", lambda: None)
    assert main(["clip_1.mkv", "voice.wav", "-o", "one.mkv", "--lossless", "-q", "--batch-size", "4",
                 "--precision", "exact", *box]) == 0
    assert np.array_equal(np.stack(read(tmp_path / "split.mkv")), np.stack(read(tmp_path / "one.mkv")))
