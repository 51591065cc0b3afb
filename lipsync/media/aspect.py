"""Pixel shape: the sample aspect ratio (SAR) of non-square-pixel video, and square-pixel views.

DV, HDV, DVD and some camera and phone formats store pixels that are not square: a 192x256
picture with a SAR of 4:3 is shown 256x256, each stored pixel drawn 4/3 as wide as it is high.
The library keeps such frames in their stored pixels (so compositing and encoding lose nothing
and the output keeps the same SAR tag), and makes a square-pixel view only where the picture
must look as displayed: face detection (``lipsync.faces.run.SquarePixelDetector``), ComfyUI's
IMAGE batches, and the lossless FFV1 output (Matroska written by PyAV cannot carry a SAR).
"""

from __future__ import annotations

from fractions import Fraction

import cv2

from ..types import Frame

__all__ = ["display_size", "sample_aspect_ratio", "to_square_pixels"]

_MAX_DENOMINATOR = 10_000


def sample_aspect_ratio(value: object) -> Fraction:
    """A file's SAR as a Fraction; 1 when it is absent, zero or not a positive number (FFmpeg
    reports 0:1 for "unknown")."""
    try:
        sar = Fraction(value).limit_denominator(_MAX_DENOMINATOR)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return Fraction(1)
    return sar if sar > 0 else Fraction(1)


def display_size(width: int, height: int, sar: Fraction) -> tuple[int, int]:
    """(width, height) of a ``width`` x ``height`` picture of pixel shape ``sar`` in square pixels.

    One side is stretched, never shrunk, so no stored detail is lost: SAR > 1 widens
    (192x256 at 4:3 -> 256x256), SAR < 1 makes it taller (720x480 at 8:9 -> 720x540). The
    stretched side is rounded to an even number (what yuv420p needs)."""
    if sar == 1:
        return width, height
    if sar > 1:
        return max(2, 2 * round(width * sar / 2)), height
    return width, max(2, 2 * round(height / sar / 2))


def to_square_pixels(frame: Frame, sar: Fraction) -> Frame:
    """``frame`` (H, W, 3) resampled to ``display_size`` (bicubic; the frame itself when SAR is 1)."""
    height, width = frame.shape[:2]
    size = display_size(width, height, sar)
    if size == (width, height):
        return frame
    return cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC)
