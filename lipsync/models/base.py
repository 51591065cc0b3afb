"""The interface a model family implements, so the engine, nodes and CLI never branch on it.

A ``Generator`` does the model part of a lip-sync and declares what it needs from the rest:

- ``crop``: the square crop it redraws (``CropSpec``: side in pixels, how the tracked face box
  becomes the cropped and pasted region, which rows it regenerates, the resampling filter);
- ``prepare_audio(wav16k)``: the audio features of a whole voice (``AudioFeatures``), from which
  the engine takes one window per output frame;
- ``generate(crops, features, batch_size, reference=False)``: crops (B, S, S, 3) uint8 **BGR** +
  features (B, …) → faces (B, 3, S, S) float32 **BGR** in [0, 1] at its native size S
  (``reference``: batched as the original code, for its exact bytes);
- optionally ``partial_rows`` (True) with ``generate(..., rows_from=r)``: the caller reads face
  rows r.. only (the mouth paste, ``lipsync.composite.first_face_row``); the rows above come
  back as the crop's and the network may leave out what only they need (Wav2Lip:
  ``lipsync.models.wav2lip.rows``). The engine asks for it only where the generator says so;
- ``to_uint8_reference(faces)``: the original code's own float → uint8 step (the reference
  paste uses it, so ``--reference`` stays bit-exact);
- ``device`` (a ``torch.device``, or a torch-free ``Device``) / ``dtype``, ``memory_estimate(batch_size)``, ``name``, ``family`` and
  ``licence`` (of the weights: what users may do with the output).

Frames are RGB everywhere else in the library; BGR is the networks' own order (Wav2Lip and
MuseTalk were both trained on OpenCV's BGR frames), so the swap happens once, in the crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, Protocol, runtime_checkable

import cv2
import numpy as np
import numpy.typing as npt

from ..types import Box, Frame

__all__ = ["CPU", "AudioFeatures", "CropSpec", "Device", "Generator", "Interpolation", "crop_faces"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

Interpolation = Literal["bilinear", "lanczos"]
"""OpenCV's INTER_LINEAR (Wav2Lip's crop) and INTER_LANCZOS4 (MuseTalk's crop)."""


@dataclass(frozen=True)
class CropSpec:
    """The square crop a generator takes and gives back.

    ``size``: its side in pixels (Wav2Lip 96, MuseTalk 256). ``bottom_margin``: pixels added
    below the tracked box (clipped to the frame) to get the region that is cropped and pasted
    back (MuseTalk v1.5: 10). ``masked_from``: the first regenerated row as a fraction of the
    crop's height (both families redraw the lower half: 0.5). ``interpolation``: how the region
    is resized to ``size``.
    """

    size: int
    bottom_margin: int = 0
    masked_from: float = 0.5
    interpolation: Interpolation = "bilinear"

    def region(self, box: Box, frame_size: tuple[int, int]) -> Box:
        """The frame region (rows top:bottom, columns left:right) cropped for ``box`` in a frame
        of ``frame_size`` (height, width)."""
        if not self.bottom_margin:
            return box
        return Box(box.top, min(frame_size[0], box.bottom + self.bottom_margin), box.left, box.right)


@dataclass(frozen=True)
class Device:
    """Where a network outside torch runs (OpenVINO, a test's stand-in), in ``torch.device``'s
    terms without importing torch: ``type`` (``"cpu"``), ``index`` (None), and ``str()``
    (``"cpu"``), so ``torch.device(str(device))`` is the torch one where torch is needed (a face
    restorer beside it)."""

    type: str = "cpu"
    index: int | None = None

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


CPU = Device("cpu")
"""The CPU, as a generator outside torch names it."""


_CV2_INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "lanczos": cv2.INTER_LANCZOS4}


def crop_faces(frames: Sequence[Frame], regions: Sequence[Box], spec: CropSpec) -> U8:
    """(B, S, S, 3) uint8 **BGR** crops of RGB ``frames`` at ``regions`` (see ``CropSpec.region``),
    resized to ``spec.size`` with ``spec.interpolation`` (OpenCV, as both originals do; resizing
    is per channel, so swapping to BGR after the resize gives the bytes of swapping before)."""
    size, flag = spec.size, _CV2_INTERPOLATION[spec.interpolation]
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for i, (frame, box) in enumerate(zip(frames, regions, strict=True)):
        crop = frame[box.top : box.bottom, box.left : box.right]
        out[i] = cv2.resize(crop, (size, size), interpolation=flag)[:, :, ::-1]
    return out


@runtime_checkable
class AudioFeatures(Protocol):
    """A whole voice prepared for one generator: one conditioning window per video frame.

    Windows are addressed by output frame index at a frame rate, so a job over frames
    [a, b) takes exactly the windows a whole run takes there.
    """

    num_samples_16k: int
    """Length of the voice at 16 kHz (samples)."""

    def frame_count(self, fps: Fraction) -> int:
        """How many frames at ``fps`` cover the whole voice (the product's rule)."""
        ...

    def reference_frame_count(self, fps: Fraction) -> int:
        """How many frames the original code makes for this voice (it may drop the end)."""
        ...

    def windows(self, fps: Fraction, first_frame: int, count: int, *, offset_ms: float = 0.0,
                reference: bool = False) -> np.ndarray:
        """The windows of frames ``first_frame … first_frame+count-1``: float32 (count, …).

        ``offset_ms`` shifts the sync (positive: the mouth moves later); ``reference`` uses the
        original code's window rule."""
        ...


@runtime_checkable
class Generator(Protocol):
    """A model family's network behind one call (see the module docstring)."""

    name: str
    """The weights' name (e.g. the checkpoint file's stem)."""
    family: str
    """``wav2lip`` or ``musetalk``."""
    licence: str
    """What the weights' licence allows, in one sentence."""
    crop: CropSpec

    @property
    def device(self) -> object:
        """Where the network runs: a ``torch.device``, or a ``Device`` for a network outside torch
        (OpenVINO), so a CPU job need not import torch. Both have ``.type`` (``"cpu"``,
        ``"cuda"``, …) and ``str()`` (``torch.device(str(device))`` gives the torch one)."""
        ...

    def prepare_audio(self, wav16k: F32) -> AudioFeatures:
        """Features of a whole voice: ``wav16k`` float32 (samples,) mono at 16 kHz."""
        ...

    def generate(self, crops_bgr: U8, features: np.ndarray, batch_size: int, *, reference: bool = False) -> F32:
        """Faces for ``crops_bgr`` (B, S, S, 3) uint8 BGR and ``features`` (B, …): float32
        (B, 3, S, S) BGR in [0, 1]. The result of a frame never depends on ``batch_size`` or on
        which frames share its batch, except with ``reference``: then the batches of
        ``batch_size`` run as the original code runs them, for its exact bytes even where the
        device's kernels round a batch differently (MuseTalk on a CPU)."""
        ...

    def to_uint8_reference(self, faces: F32) -> U8:
        """``faces`` (B, 3, S, S) as the original code turns them into uint8 (B, S, S, 3) BGR."""
        ...

    def memory_estimate(self, batch_size: int) -> int:
        """Bytes the network needs on its device for weights plus one batch of ``batch_size``."""
        ...
