"""The pixel steps around MuseTalk's network: the crop it takes and the face it gives back.

``crop_face``: the region (the tracked box with ``CropSpec.bottom_margin`` added below) cut from
a BGR frame and stretched to 256² with Lanczos, as the original (aspect ratio not kept).
``face_to_region``: a 256² face resized to the region with OpenCV's default bilinear filter,
the face the original pastes (``res_frame``).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from ...types import Box
from ..base import CropSpec

__all__ = ["crop_face", "face_to_region"]

U8 = npt.NDArray[np.uint8]

_INTERPOLATION = {"lanczos": cv2.INTER_LANCZOS4, "bilinear": cv2.INTER_LINEAR}


def crop_face(frame_bgr: U8, box: Box, spec: CropSpec) -> U8:
    """The (S, S, 3) crop of ``box`` (before the margin) in ``frame_bgr`` (H, W, 3)."""
    region = spec.region(box, frame_bgr.shape[:2])
    if not region.is_valid():
        raise ValueError(f"empty crop region {region} for a frame of {frame_bgr.shape[1]}x{frame_bgr.shape[0]}")
    patch = frame_bgr[region.top:region.bottom, region.left:region.right]
    return cv2.resize(patch, (spec.size, spec.size), interpolation=_INTERPOLATION[spec.interpolation])


def face_to_region(face_bgr: U8, region: Box) -> U8:
    """A generated (S, S, 3) uint8 face resized to ``region``'s size, as the original pastes it."""
    return cv2.resize(face_bgr, (region.width, region.height))
