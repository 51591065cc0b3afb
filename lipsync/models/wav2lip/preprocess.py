"""From frames + face boxes + mel windows to generated 96×96 faces: the one preprocessing path.

Every compositing mode goes through these functions, so the network sees exactly the same
inputs whichever way its output is pasted back (a test checks it). The reference order of
operations is kept bit for bit:

1. crop ``frame[top:bottom, left:right]`` and resize to 96×96 with ``cv2.resize`` (bilinear);
2. swap RGB → BGR (the weights were trained on OpenCV's BGR frames; resizing is per channel,
   so swapping after the resize gives the same bytes as swapping before);
3. a copy with rows 48–95 zeroed, concatenated before the unmasked copy → 6 channels;
4. ``/ 255.`` in float64, then float32 (the reference's numpy → ``torch.FloatTensor`` route;
   a lookup table gives the same values without the float64 temporaries).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..base import CropSpec
from ..base import crop_faces as base_crop_faces
from .sizes import IMG_SIZE
from ...types import Box, Frame

__all__ = [
    "crop_faces",
    "model_inputs",
    "predict",
    "to_uint8_reference",
]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

# float32(i / 255.) computed in float64 first, as the reference does.
_TO_UNIT = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)


def crop_faces(frames: Sequence[Frame], boxes: Sequence[Box]) -> U8:
    """(B, 96, 96, 3) uint8 **BGR** crops of ``frames`` (RGB) at ``boxes`` (bilinear, as the reference)."""
    return base_crop_faces(frames, boxes, CropSpec(IMG_SIZE))


def model_inputs(crops_bgr: U8) -> F32:
    """(B, 6, 96, 96) float32: lower-half-masked crop, then the crop, scaled to [0, 1]."""
    n = crops_bgr.shape[0]
    faces = np.empty((n, 6, IMG_SIZE, IMG_SIZE), dtype=np.float32)
    unit = _TO_UNIT[crops_bgr].transpose(0, 3, 1, 2)  # (B, 3, 96, 96)
    faces[:, :3] = unit
    faces[:, :3, IMG_SIZE // 2 :, :] = 0.0
    faces[:, 3:] = unit
    return faces


def predict(generator: Callable[[F32, F32], F32] | Any, mel: F32, crops_bgr: U8, batch_size: int,
            rows_from: int = 0) -> F32:
    """Run the network over ``crops_bgr`` (B, 96, 96, 3) with ``mel`` (B, 80, 16) in batches.

    Returns (B, 3, 96, 96) float32 BGR in [0, 1]. ``rows_from`` > 0: rows from it on are the
    network's, the rows above are the crops' own (see ``Wav2LipGenerator.generate``); the
    network is asked for those rows only where its ``run_batches`` takes ``rows_from`` (it may
    return rows ``first_row`` .. 95, ``rows.RowCut``).
    """
    if len(mel) != len(crops_bgr):
        raise ValueError(f"{len(mel)} mel windows for {len(crops_bgr)} faces")
    rows_from = min(max(0, int(rows_from)), IMG_SIZE - 1)
    faces = model_inputs(crops_bgr)
    batches = [(mel[i : i + batch_size], faces[i : i + batch_size]) for i in range(0, len(faces), batch_size)]
    run_batches = getattr(generator, "run_batches", None)  # a TorchGenerator runs CPU batches at once
    cut = (rows_from,) if rows_from > 0 and getattr(generator, "partial_rows", False) else ()
    parts = run_batches(batches, *cut) if run_batches is not None else [generator(m, f, *cut) for m, f in batches]
    if not parts:
        return np.empty((0, 3, IMG_SIZE, IMG_SIZE), dtype=np.float32)
    if not rows_from:
        return np.concatenate(parts)
    out = np.empty((len(faces), 3, IMG_SIZE, IMG_SIZE), dtype=np.float32)
    out[:, :, :rows_from] = faces[:, 3:, :rows_from]  # the crops, unmasked
    start = 0
    for part in parts:
        first = IMG_SIZE - part.shape[2]  # the first row the network computed
        out[start : start + len(part), :, rows_from:] = part[:, :, rows_from - first :]
        start += len(part)
    return out


def to_uint8_reference(pred: F32) -> U8:
    """The reference's ``(pred.transpose(0, 2, 3, 1) * 255.).astype(np.uint8)``: BGR, truncated."""
    return (pred.transpose(0, 2, 3, 1) * 255.0).astype(np.uint8)
