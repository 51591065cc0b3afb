"""Test doubles and tiny media shared by the pipeline and robustness tests.

``Recorder`` stands in for the network (identity: it returns the unmasked face and records what
it was fed), ``FakeDetector`` finds one face at a fixed place; the helpers write small lossless
videos whose frames can be identified after a round trip.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from lipsync.types import Detection, Waveform
from lipsync.media.video import VideoWriter, iter_frames
from lipsync.models.wav2lip.generator import Wav2LipGenerator

__all__ = ["FakeDetector", "Recorder", "numbered_frames", "read", "silence", "write_video"]


class Recorder(Wav2LipGenerator):
    """A stand-in network that records its inputs and returns the unmasked face (identity)."""

    name = "recorder"

    def __init__(self) -> None:
        self.mel: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []

    def __call__(self, mel: np.ndarray, faces: np.ndarray) -> np.ndarray:
        self.mel.append(mel.copy())
        self.faces.append(faces.copy())
        return np.ascontiguousarray(faces[:, 3:6])

    def all_mel(self) -> np.ndarray:
        return np.concatenate(self.mel)

    def all_faces(self) -> np.ndarray:
        return np.concatenate(self.faces)


class FakeDetector:
    """Finds one face at a fixed place, except in the frames listed in ``absent``."""

    name = "fake"

    def __init__(
        self, absent: Iterable[int] = frozenset(), box: tuple[int, int, int, int] = (56, 48, 200, 222)
    ) -> None:
        self.absent, self.box, self.calls = set(absent), box, 0

    def detect(self, frame: np.ndarray) -> list[Detection]:
        index = self.calls
        self.calls += 1
        if index in self.absent:
            return []
        x1, y1, x2, y2 = self.box
        return [Detection(x1, y1, x2, y2, 0.99)]


def write_video(path: Path, frames: list[np.ndarray], fps: int | Fraction = 25) -> Path:
    """A lossless (FFV1 .mkv) video of ``frames``: they read back bit-exact."""
    with VideoWriter(path, Fraction(fps), lossless=True) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def numbered_frames(n: int, size: int = 256) -> list[np.ndarray]:
    """Frames whose top-left pixel holds their index, so the output order can be read back."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    frames = []
    for i in range(n):
        f = base.copy()
        f[:8, :8] = i
        frames.append(f)
    return frames


def silence(seconds: float, rate: int = 16000) -> Waveform:
    return Waveform(np.zeros((1, int(seconds * rate)), np.float32), rate)


def read(path: Path) -> list[np.ndarray]:
    return list(iter_frames(path))
