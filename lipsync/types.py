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
    "ColourInfo",
    "CompositeMode",
    "Detection",
    "DetectorName",
    "FaceChoice",
    "FaceFrame",
    "Frame",
    "LengthPolicy",
    "MelWindows",
    "MissingFacePolicy",
    "ModelFamily",
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
FaceChoice = Literal["largest", "index", "closest", "point"]
"""Which person to follow (``lipsync.faces.speaker``): the largest face at the start, the
``face_index``-th from the left, the face at ``face_point``; ``closest`` is the former name of
``largest`` (both follow the person picked at the start)."""
CompositeMode = Literal["mouth", "reference"]
LengthPolicy = Literal["auto", "trim", "loop", "pingpong", "freeze"]
Smoothing = Literal["steady", "reference"]
"""``steady``: lipsync.faces.smooth (the product's default). ``reference``: Wav2Lip's 5-frame forward mean."""
Resampler = Literal["lanczos", "bicubic", "bilinear"]
ColorMatch = Literal["off", "lab"]
Blend = Literal["feather", "seamless"]
ModelFamily = Literal["wav2lip", "musetalk"]
"""The model families behind the ``Generator`` interface (``lipsync.models.wav2lip``, ``lipsync.models.musetalk``)."""
Precision = Literal["exact", "fast", "fastest"]
"""The network's arithmetic on a CPU: float32 as trained, bfloat16, or int8 (``lipsync.models.wav2lip.cpu``)."""


def choices(literal: Any) -> list[str]:
    """The values of a ``Literal`` type, in declaration order."""
    return list(get_args(literal))


@dataclass(frozen=True)
class ColourInfo:
    """How a video's stored values are to be shown: its colour description, in FFmpeg's names.

    ``matrix`` turns Y'CbCr into R'G'B' ("bt709", "smpte170m"/"bt470bg" (BT.601), "bt2020nc",
    "gbr" for RGB storage, ...); ``range`` is "limited" (Y' 16–235 in 8 bits, "TV"/"MPEG") or
    "full" (0–255, "PC"/"JPEG", the yuvj* formats); ``primaries`` ("bt709", "smpte170m",
    "bt470bg", "bt2020", ...) and ``transfer`` ("bt709", "smpte170m", "smpte2084" (PQ),
    "arib-std-b67" (HLG), ...) say which colours and which light the R'G'B' values stand for.
    ``bit_depth`` is the stored bits per sample. ``assumed`` names the fields the file does not
    state, filled in the way players do (see ``lipsync.media.colour``). The default is what the
    writer uses for frames of unknown origin (ComfyUI images): BT.709, limited range, 8 bits.
    """

    matrix: str = "bt709"
    range: Literal["limited", "full"] = "limited"
    primaries: str = "bt709"
    transfer: str = "bt709"
    bit_depth: int = 8
    assumed: tuple[str, ...] = ()

    @property
    def hdr(self) -> Literal["pq", "hlg"] | None:
        """"pq" (SMPTE ST 2084) or "hlg" (ARIB STD-B67) for HDR video, else None."""
        return {"smpte2084": "pq", "arib-std-b67": "hlg"}.get(self.transfer)  # type: ignore[return-value]

    def describe(self) -> str:
        """One line for people, e.g. "bt709 matrix, limited range, bt709 primaries, bt709 transfer,
        8-bit (matrix assumed: untagged)"."""
        text = (f"{self.matrix} matrix, {self.range} range, {self.primaries} primaries, "
                f"{self.transfer} transfer, {self.bit_depth}-bit")
        if self.hdr:
            text += f", HDR {self.hdr.upper()}"
        if self.assumed:
            text += f" ({', '.join(self.assumed)} assumed: untagged)"
        return text


@dataclass(frozen=True)
class VideoInfo:
    """What a video (or still image) file holds, read from its header without decoding it all.

    ``width``/``height`` are the size of the decoded frames (after rotation), in stored pixels.
    ``sample_aspect_ratio`` is the shape of those pixels (width / height; 4/3 for DV-style
    anamorphic video, 1 for square pixels); ``lipsync.media.aspect.display_size`` gives the size
    it is shown at.
    ``colour`` is the file's colour description. ``frame_count`` is exact when the container
    records it and estimated from duration × fps otherwise; the decoder yields what the file
    really holds.
    """

    path: str
    width: int
    height: int
    fps: Fraction
    frame_count: int
    duration: float
    rotation: int = 0
    has_audio: bool = False
    audio_start: float | None = None
    """Seconds from the first video frame to the first sample of the audio track, from the header
    (> 0: the sound starts late, silence plays before it; < 0: sound before the picture, which is
    cut); None without audio or a start time."""
    audio_gaps: tuple[tuple[float, float], ...] | None = None
    """Holes in the audio track, (where, how long) in seconds from the first video frame, read
    from an MP4/MOV index; None when the container lists no full index (decoding fills every hole
    with silence either way)."""
    codec: str = ""
    is_still: bool = False
    sample_aspect_ratio: Fraction = Fraction(1)
    colour: ColourInfo = field(default_factory=ColourInfo)


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
    """Audio samples as float32 (channels, samples) at their own rate. ``notes``: what placing
    the file's sound on its timeline did (``lipsync.media.audio.describe_placement``)."""

    samples: npt.NDArray[np.float32]
    sample_rate: int
    source: str = field(default="<array>")
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return self.num_samples / float(self.sample_rate)

