"""Putting the generated 96×96 face back into the frame.

Two modes share everything before this step (see ``lipsync.generate``):

``reference``
    The original Wav2Lip: ``(pred * 255).astype(uint8)`` (truncation), ``cv2.resize`` to the box
    (bilinear) and a hard paste of the whole box. Bit-exact with ``inference.py``; shows the
    blurry square and blurs the eyes, which is why it is not the default.

``mouth`` (default)
    Only the lower face changes. The mask is the lower half of an ellipse that starts at the
    nose (from landmarks when the detector gives them, else at the middle of the box) and ends at
    the bottom of the box, feathered inwards, so the mask — feather included — never reaches
    above the middle of the box with a plain box. Everything outside the mask (eyes, forehead,
    background, and all pixels outside the box) keeps its exact input value. The generated face
    is resized with a sharper resampler than bilinear and blended in float, then rounded.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from .types import Box, Frame

__all__ = [
    "Resampler",
    "mouth_mask",
    "paste_mouth",
    "paste_reference",
]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

Resampler = Literal["lanczos", "bicubic", "bilinear"]
_INTERP = {"lanczos": cv2.INTER_LANCZOS4, "bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR}

# Landmark rows (SCRFD order): right eye, left eye, nose, right mouth corner, left mouth corner.
_NOSE, _MOUTH_R, _MOUTH_L = 2, 3, 4


def paste_reference(frame: Frame, face_bgr: U8, box: Box) -> Frame:
    """The reference paste: ``face_bgr`` (96, 96, 3) uint8 resized bilinearly into ``box``."""
    out = frame.copy()
    patch = cv2.resize(face_bgr, (box.width, box.height))
    out[box.top : box.bottom, box.left : box.right] = patch[:, :, ::-1]
    return out


def _smoothstep(x: F32) -> F32:
    x = np.clip(x, 0.0, 1.0)
    return (x * x * (3.0 - 2.0 * x)).astype(np.float32)


def mouth_mask(height: int, width: int, landmarks: npt.NDArray[np.float32] | None = None, feather: float = 0.15) -> F32:
    """Blend weights (height, width) in [0, 1] over a face box: 1 on the mouth and chin, 0 on the
    upper face, ramping over ``feather`` × the box width.

    ``landmarks`` (5, 2) are in box coordinates; without them the mask top is the box middle.
    """
    top = height / 2.0
    cx, half_w = width / 2.0, width / 2.0
    if landmarks is not None and np.all(np.isfinite(landmarks)):
        nose_y = float(landmarks[_NOSE, 1])
        top = min(max(top, nose_y), height * 0.8)
        left_x, right_x = sorted((float(landmarks[_MOUTH_R, 0]), float(landmarks[_MOUTH_L, 0])))
        cx = (left_x + right_x) / 2.0
        half_w = min(max(right_x - left_x, width * 0.3), width / 2.0 + abs(width / 2.0 - cx))
        cx = float(np.clip(cx, half_w * 0.5, width - half_w * 0.5))
    depth = max(height - top, 1.0)
    ramp = max(feather * width, 1.0)
    ys = (np.arange(height, dtype=np.float32) + 0.5)[:, None]
    xs = (np.arange(width, dtype=np.float32) + 0.5)[None, :]
    # Normalised radius of the lower half-ellipse centred on (cx, top) with axes (half_w, depth).
    r = np.sqrt(((xs - cx) / half_w) ** 2 + ((ys - top) / depth) ** 2)
    inside_ellipse = _smoothstep((1.0 - r) * min(half_w, depth) / ramp)
    below_top = _smoothstep((ys - top) / ramp)
    mask = inside_ellipse * below_top
    mask[ys[:, 0] < top] = 0.0
    return mask.astype(np.float32)


def paste_mouth(
    frame: Frame,
    pred_bgr: F32,
    box: Box,
    landmarks: npt.NDArray[np.float32] | None = None,
    *,
    feather: float = 0.15,
    resample: Resampler = "lanczos",
) -> tuple[Frame, F32]:
    """Blend the generated face ``pred_bgr`` (3, 96, 96) float in [0, 1] into the lower face.

    Returns the new frame and the mask over the box (height, width). Pixels where the mask is 0
    are copied from ``frame`` unchanged.
    """
    h, w = box.height, box.width
    local = None if landmarks is None else landmarks - np.array([box.left, box.top], dtype=np.float32)
    mask = mouth_mask(h, w, local, feather)
    face_rgb = np.ascontiguousarray(pred_bgr[::-1].transpose(1, 2, 0)) * 255.0
    patch = cv2.resize(face_rgb, (w, h), interpolation=_INTERP[resample])
    region = frame[box.top : box.bottom, box.left : box.right].astype(np.float32)
    a = mask[:, :, None]
    blended = np.clip(np.rint(region + (patch - region) * a), 0, 255).astype(np.uint8)
    out = frame.copy()
    touched = mask > 0
    out[box.top : box.bottom, box.left : box.right][touched] = blended[touched]
    return out, mask
