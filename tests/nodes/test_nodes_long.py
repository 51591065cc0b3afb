"""ReSync Lip-Sync Video keeps its memory flat on long inputs (marker ``slow``).

720p clips of 300 and 1500 frames (a minute: 4 GB as uint8 frames, 16.6 GB as an IMAGE batch)
go through the node with a tiny network and a fake detector. The process's peak resident memory
during each run (Linux VmHWM, reset before it) must not grow with the length, and must stay a
small fraction of the video's size. LIPSYNC_LONG_FRAMES sets the longer length.
    python -m pytest -m slow tests/nodes/test_nodes_long.py -s
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fakehost import host  # noqa: F401  (fixture)
from test_nodes_lipsync import FakeDetector, TinyWav2Lip, audio_dict, speech

from lipsync.types import Detection
from lipsync.media.video import VideoWriter

pytestmark = pytest.mark.slow

FRAMES = int(os.environ.get("LIPSYNC_LONG_FRAMES", "1500"))
H, W = 720, 1280


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


class CentreDetector(FakeDetector):
    def detect(self, frame: np.ndarray) -> list[Detection]:
        return [Detection(520.0, 200.0, 760.0, 480.0, score=0.9)]


def _write(path: Path, frames: int) -> Path:
    texture = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    with VideoWriter(path, 25) as writer:
        for i in range(frames):
            writer.write(np.roll(texture, 8 * i, axis=1))
    return path


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc peak-RSS reset")
def test_a_minute_of_720p_streams_in_bounded_memory(host, monkeypatch) -> None:
    root = host.pack.__name__
    pipeline = sys.modules[f"{root}.lipsync.engine.lipsync"]
    monkeypatch.setattr(pipeline, "create_detector", lambda name, models_dir=None: CentreDetector())
    patcher = sys.modules["comfy.model_patcher"].ModelPatcher(TinyWav2Lip().eval(), "cpu", "cpu")
    model = sys.modules[f"{root}.nodes.model"].Wav2LipModel("tiny", patcher=patcher)
    peaks = {}
    for frames in (FRAMES // 5, FRAMES):
        clip = _write(host.input / f"clip_{frames}.mp4", frames)
        audio = audio_dict(speech(frames / 25, rate=16000))
        Path("/proc/self/clear_refs").write_text("5")
        before = _status("VmRSS")
        started = time.monotonic()
        host.run("ReSyncLipSyncVideo", video=clip.name, audio=audio, model=model, filename_prefix="long")
        peaks[frames] = _status("VmHWM") - before
        assert host.progress[-1] == (frames, frames)
        print(f"{frames} frames of {W}x{H} ({frames * H * W * 3 / 1e9:.1f} GB as uint8) in "
              f"{time.monotonic() - started:.0f} s: peak RSS growth {peaks[frames] / 1e6:.0f} MB")
    short, long = peaks[FRAMES // 5], peaks[FRAMES]
    assert long < short * 1.25 + 50e6, "memory grew with the video's length"
    assert long < FRAMES * H * W * 3 / 6
