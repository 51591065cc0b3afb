"""Tiny media and stand-ins for the cluster tests. The detectors decide from the frame itself
(never from how often they were called), so a frame range detects exactly what a whole run
detects there; workers get them by value (``ray.cloudpickle.register_pickle_by_value``)."""

from __future__ import annotations

import os
import signal
from fractions import Fraction
from pathlib import Path

import numpy as np

from lipsync.media.video import VideoWriter
from lipsync.types import Detection, Waveform

SIZE = 128


def clip_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` 128² frames: smooth noise that drifts, the index in the top-left pixels."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (SIZE // 8, SIZE // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    frames = []
    for i in range(n):
        f = np.roll(base, i % SIZE, axis=1).copy()
        f[:4, :4] = i % 256
        f[:4, 4:8] = i // 256
        frames.append(f)
    return frames


def write_clip(path: Path, n: int, fps: int = 25, seed: int = 0) -> Path:
    with VideoWriter(path, Fraction(fps), lossless=path.suffix == ".mkv") as writer:
        for frame in clip_frames(n, seed):
            writer.write(frame)
    return path


def tone(seconds: float, freq: float = 220.0, rate: int = 16000) -> Waveform:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + np.sin(2 * np.pi * 3 * t))
    return Waveform(wave[None].astype(np.float32), rate, source="tone")


def frame_index(frame: np.ndarray) -> int:
    return int(frame[0, 0, 0]) + 256 * int(frame[0, 4, 0])


class StillFace:
    """One face in the middle of every frame."""

    name = "still-face"

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return [Detection(30.0, 24.0, 98.0, 100.0, 0.99)]


class TwoSpeakers:
    """Two faces that drift with the frame index (read from the frame), the left one larger in
    the first half and smaller in the second; none in every 17th frame: the face choice, the
    smoother and the missing-face policy all carry state across any range boundary."""

    name = "two-speakers"

    def detect(self, frame: np.ndarray) -> list[Detection]:
        i = frame_index(frame)
        if i % 17 == 5:
            return []
        wobble = 6.0 * np.sin(i / 7.0)
        grow = 8.0 if i < 60 else -8.0
        left = Detection(4.0 + wobble, 20.0, 60.0 + wobble + grow, 84.0 + grow, 0.9)
        right = Detection(66.0 - wobble, 30.0 + wobble, 122.0 - wobble, 90.0 + wobble, 0.8)
        return [left, right]


class DiesOnce(StillFace):
    """``StillFace`` whose process is killed (SIGKILL, as the OOM killer does) at the 6th frame
    of the first item it sees while ``marker`` exists; the marker is removed first, so a
    restarted worker works."""

    name = "dies-once"

    def __init__(self, marker: Path) -> None:
        self.marker, self.seen = str(marker), 0

    def detect(self, frame: np.ndarray) -> list[Detection]:
        self.seen += 1
        if self.seen == 6 and self._claim():
            os.kill(os.getpid(), signal.SIGKILL)
        return super().detect(frame)

    def _claim(self) -> bool:
        """True for the one worker that removes the marker (two workers may reach their 6th
        frame at the same moment; only the one whose unlink succeeds dies)."""
        try:
            os.unlink(self.marker)
        except FileNotFoundError:
            return False
        return True
