"""The vocabulary of the pipeline: small typed values that flow between the stages.

Conventions used everywhere in the library:
- a ``Frame`` is an RGB uint8 array of shape (H, W, 3), upright (rotation metadata applied),
  as PyAV and ComfyUI give it. The Wav2Lip network works in BGR: the conversion happens in
  exactly one place (``lipsync.models.wav2lip.preprocess``).
- a ``Box`` uses the reference's order and meaning: rows ``top:bottom``, columns ``left:right``
  (half-open, in pixels of the frame).
- a ``MelWindows`` array is float32 (N, 80, 16): one 200 ms window of the mel spectrogram per
  video frame.
- choices offered to users are ``Literal`` types; ``choices(T)`` lists them for the CLI and the
  node UI, so there is one source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

__all__ = [
    "Blend",
    "Box",
    "ColorMatch",
    "CompositeMode",
    "Detection",
    "DetectorName",
    "FaceChoice",
    "FaceFrame",
    "Frame",
    "LengthPolicy",
    "MelWindows",
    "MissingFacePolicy",
    "Precision",
    "Resampler",
    "Smoothing",
    "VideoInfo",
    "Waveform",
    "choices",
]

Frame = npt.NDArray[np.uint8]
"""RGB uint8 (H, W, 3)."""

MelWindows = npt.NDArray[np.float32]
"""float32 (N, 80, 16): the mel window of each output frame."""

DetectorName = Literal["auto", "yuface", "yunet", "insightface"]
MissingFacePolicy = Literal["passthrough", "hold", "interpolate", "fail"]
FaceChoice = Literal["largest", "index", "closest"]
CompositeMode = Literal["mouth", "reference"]
LengthPolicy = Literal["auto", "trim", "loop", "pingpong", "freeze"]
Smoothing = Literal["steady", "reference"]
"""``steady``: lipsync.faces.smooth (the product's default). ``reference``: Wav2Lip's 5-frame forward mean."""
Resampler = Literal["lanczos", "bicubic", "bilinear"]
ColorMatch = Literal["off", "lab"]
Blend = Literal["feather", "seamless"]
Precision = Literal["exact", "fast", "fastest"]
"""The network's arithmetic on a CPU: float32 as trained, bfloat16, or int8 (``lipsync.models.wav2lip.cpu``)."""


def choices(literal: Any) -> list[str]:
    """The values of a ``Literal`` type, in declaration order."""
    return list(get_args(literal))


@dataclass(frozen=True)
class VideoInfo:
    """What a video (or still image) file holds, read from its header without decoding it all.

    ``width``/``height`` are the displayed size (after rotation). ``frame_count`` is exact when
    the container records it and estimated from duration × fps otherwise; the decoder yields
    what the file really holds.
    """

    path: str
    width: int
    height: int
    fps: Fraction
    frame_count: int
    duration: float
    rotation: int = 0
    has_audio: bool = False
    codec: str = ""
    is_still: bool = False


@dataclass(frozen=True)
class Box:
    """A face box in frame pixels: rows top:bottom, columns left:right (the reference's y1 y2 x1 x2)."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def is_valid(self) -> bool:
        return self.bottom > self.top and self.right > self.left

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.top, self.bottom, self.left, self.right)


@dataclass(frozen=True)
class Detection:
    """One face found by a detector, in frame pixels (floats, may reach past the border).

    ``landmarks`` is (5, 2) x,y when the detector gives them, in the order right eye, left eye,
    nose tip, right mouth corner, left mouth corner (the subject's right/left; SCRFD/RetinaFace
    order).
    """

    x1: float
    y1: float
    x2: float
    y2: float
    score: float = 1.0
    landmarks: npt.NDArray[np.float32] | None = None

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)


@dataclass(frozen=True)
class FaceFrame:
    """The face to re-sync in one frame, after tracking. ``box`` None: leave the frame as it is."""

    box: Box | None
    landmarks: npt.NDArray[np.float32] | None = None
    detected: bool = True
    """False when the box was filled in by the missing-face policy (hold / interpolate)."""


@dataclass(frozen=True)
class Waveform:
    """Audio samples as float32 (channels, samples) at their own rate."""

    samples: npt.NDArray[np.float32]
    sample_rate: int
    source: str = field(default="<array>")

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return self.num_samples / float(self.sample_rate)

