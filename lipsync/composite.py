"""Putting the generated face back into the frame.

Two modes share everything before this step (see ``lipsync.models.wav2lip.preprocess``):

``reference``
    The original Wav2Lip: ``(pred * 255).astype(uint8)`` (truncation), ``cv2.resize`` to the box
    (bilinear) and a hard paste of the whole box. Bit-exact with ``inference.py``; shows the
    blurry square and blurs the eyes, which is why it is not the default.

``mouth`` (default)
    Only the lower face changes. The mask is exactly 1 over the mouth core — the lips and the
    jaw's travel down to the chin (rows 0.6–0.95 of the box and its central half, widened to the
    mouth corners when the detector gives landmarks) — so the generated mouth replaces the
    original there completely, with no ghost of the old lips or chin; the soft edge lies outside
    the core and never above the nose tip (landmarks) or the middle of the box (a plain box).
    Everything outside the mask (eyes, forehead, background, and all pixels outside the box)
    keeps its exact input value. The generated face
    is resized with a sharper resampler than bilinear (Lanczos by default, chosen by
    ``bench/quality``; a face larger than the box, e.g. a restored 512 px one, is shrunk with
    pixel-area averaging instead, which does not alias) and blended in float, then rounded.

Two options refine the mouth mode, both off by default:

``color_match="lab"``
    Before blending, the generated face's colours are shifted and scaled, per channel in CIE
    L*a*b*, so that their mean and standard deviation under the mask equal the original lower
    face's. Removes a tint or brightness step at the seam when the network (or a restorer)
    changed the skin tone. Lightness contrast is only ever reduced (scale 0.5–1×: raising it
    would amplify the network's noise and blockiness); the colour axes a*, b* scale 0.5–2×.

``blend="seamless"``
    Poisson blending (OpenCV ``seamlessClone``, normal clone) inside the mask: the generated
    face's gradients are kept and its colours are solved to meet the original at the mask's
    edge, then the result is feathered in like the default. Hides any colour difference at the
    seam, at the cost of ~5 ms per face; can bleed the original's colours into the mouth when
    they differ a lot. Pixels outside the mask stay exactly the input's, as in the default.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from .errors import InputError
from .options import CompositeOptions
from .types import Blend, Box, ColorMatch, Frame, Resampler, choices

__all__ = [
    "CORE_COLUMNS",
    "CORE_ROWS",
    "Blend",
    "first_face_row",
    "ColorMatch",
    "Resampler",
    "match_color",
    "mouth_mask",
    "paste",
    "paste_mouth",
    "paste_reference",
    "resize_face",
]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

_INTERP = {"lanczos": cv2.INTER_LANCZOS4, "bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR}

_SCALE_MIN = np.array([0.5, 0.5, 0.5], np.float32)
_SCALE_MAX = np.array([1.0, 2.0, 2.0], np.float32)
"""Bounds of the colour-match scale per L*, a*, b*: lightness contrast is never raised (it would
amplify the network's noise), and a nearly flat region is not blown up."""

# Landmark rows (SCRFD order): right eye, left eye, nose, right mouth corner, left mouth corner.
_NOSE, _MOUTH_R, _MOUTH_L = 2, 3, 4


def _output(frame: Frame, out: Frame | None) -> Frame:
    """A copy of ``frame`` to paste into: in ``out`` when it is given (same shape and dtype) —
    a caller pasting frame after frame reuses one buffer instead of allocating a fresh one per
    frame, whose first touch costs more than the copy at 720p."""
    if out is None or out.shape != frame.shape or out.dtype != frame.dtype:
        return frame.copy()
    np.copyto(out, frame)
    return out


def paste_reference(frame: Frame, face_bgr: U8, box: Box, *, out: Frame | None = None) -> Frame:
    """The reference paste: ``face_bgr`` (96, 96, 3) uint8 resized bilinearly into ``box``.

    ``frame`` is never changed; the result is a new array, or ``out`` (see ``paste_mouth``)."""
    out = _output(frame, out)
    patch = cv2.resize(face_bgr, (box.width, box.height))
    out[box.top : box.bottom, box.left : box.right] = patch[:, :, ::-1]
    return out


CORE_ROWS = (0.6, 0.95)
"""Rows of the face box (fractions of its height) that the mouth mask always covers with weight
1: the lips and the jaw's travel down to the chin, where the network draws the new mouth."""
CORE_COLUMNS = (0.25, 0.75)
"""Columns of the face box (fractions of its width) that the mouth mask always covers with weight
1 over ``CORE_ROWS`` (with landmarks, widened to the mouth corners when they lie outside). Wider
puts the soft edge on the jaw's outline, where ``bench/quality`` measured a visible seam."""
_MIN_TOP_RAMP = 0.03
"""Least height of the soft edge under the nose, as a fraction of the box height."""


def _core(height: int, width: int, landmarks: npt.NDArray[np.float32] | None) -> tuple[float, float, float, float, float]:
    """(top, core top, core bottom, core left, core right) in box pixels (edges, not centres).

    Nothing changes above ``top``: the nose tip (landmarks), else the middle of the box. The core
    covers ``CORE_ROWS`` x ``CORE_COLUMNS`` at least; with landmarks also the upper lip (from
    40 % of the way from the nose tip to the mouth corners) and both mouth corners. The core never
    reaches the box's edges (the feather must fit between them). The soft edge above the core is
    at least 3 % of the box height: with a nose tip lower than that above the core (below ~0.57
    of the box, rare: detectors put it at 0.45-0.57) ``top`` is raised to make room.
    """
    top = height / 2.0
    core_top = math.floor(CORE_ROWS[0] * height)
    left, right = math.floor(CORE_COLUMNS[0] * width), math.ceil(CORE_COLUMNS[1] * width)
    if landmarks is not None and np.all(np.isfinite(landmarks)):
        nose_y = float(landmarks[_NOSE, 1])
        mouth_y = (float(landmarks[_MOUTH_R, 1]) + float(landmarks[_MOUTH_L, 1])) / 2.0
        upper_lip = nose_y + 0.4 * (mouth_y - nose_y)
        core_top = min(core_top, max(math.floor(upper_lip), 1))
        top = min(max(top, nose_y), core_top - _MIN_TOP_RAMP * height)
        corners = sorted((float(landmarks[_MOUTH_R, 0]), float(landmarks[_MOUTH_L, 0])))
        left = min(left, math.floor(corners[0]))
        right = max(right, math.ceil(corners[1]))
    top = max(top, 0.0)
    core_top = max(core_top, math.ceil(top))
    core_bottom = max(math.ceil(CORE_ROWS[1] * height), core_top + 1)
    core_bottom = min(core_bottom, height - 1)
    left, right = max(left, 1), min(right, width - 1)
    return top, float(core_top), float(core_bottom), float(left), float(right)


def first_face_row(box: Box, landmarks: npt.NDArray[np.float32] | None, size: int) -> int:
    """The first row of a generated face (``size`` rows) that ``paste_mouth`` can read for a face
    in ``box`` with ``landmarks`` (5, 2) in frame pixels (None: a plain box), whatever its options.

    The mask is 0 on box rows whose centre lies above ``_core``'s ``top`` (the nose tip or the
    box middle); one box row more for the Poisson blend's gradients; the resize to the box reads
    up to four face rows above a box row's centre (Lanczos: 3, bicubic: 1, area: 0). A
    generator may leave out the face rows above (``Wav2LipGenerator.generate``'s ``rows_from``).
    """
    height, width = box.height, box.width
    local = None if landmarks is None else landmarks - np.array([box.left, box.top], dtype=np.float32)
    top = _core(height, width, local)[0]
    first_box_row = max(0, math.ceil(top - 0.5) - 1)
    centre = (first_box_row + 0.5) * size / float(height) - 0.5
    return min(max(0, math.floor(centre) - 4), size - 1)


def mouth_mask(height: int, width: int, landmarks: npt.NDArray[np.float32] | None = None, feather: float = 0.15) -> F32:
    """Blend weights (height, width) in [0, 1] over a face box: exactly 1 over the mouth core,
    0 on the upper face, the soft edge outside the core.

    The core (``_core``) is the lips and the jaw's travel down to the chin: rows ``CORE_ROWS``
    and columns ``CORE_COLUMNS`` of the box at least, so the new mouth fully replaces the
    original there (a weight below 1 would let the original lips and chin show through as a
    ghost). Around it the weight falls linearly to 0 over ``feather`` x the box width on the sides,
    and over what fits above (down from the nose tip, or the box middle without landmarks; see
    ``_core`` for a nose tip lower than 0.57 of the box) and
    below (to one pixel inside the box's bottom edge); the corners are rounded. The ramp is linear
    because the edges above and below are narrow (~10 px under the nose of a 250 px face): a
    smoothstep is 1.5 x steeper at its middle, which ``bench/quality`` measured as a seam. Nothing
    above the nose tip / the box middle and nothing on the box's outermost pixels changes.

    ``landmarks`` (5, 2) are in box coordinates (SCRFD order).
    """
    top, core_top, core_bottom, left, right = _core(height, width, landmarks)
    side = max(feather * width, 1e-3)
    ramp_left, ramp_right = min(side, left - 1.0), min(side, width - 1.0 - right)
    ramp_top = max(min(side, core_top - top), 1e-3)
    ramp_bottom = max(min(side, height - 1.0 - core_bottom), 1e-3)
    ys = np.arange(height, dtype=np.float32) + 0.5
    xs = np.arange(width, dtype=np.float32) + 0.5
    dy = np.maximum((core_top - ys) / ramp_top, 0.0) + np.maximum((ys - core_bottom) / ramp_bottom, 0.0)
    dx = np.maximum((left - xs) / max(ramp_left, 1e-3), 0.0) + np.maximum((xs - right) / max(ramp_right, 1e-3), 0.0)
    mask = np.clip(1.0 - np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2), 0.0, 1.0)
    mask[ys < top] = 0.0
    return mask.astype(np.float32)


def resize_face(face: F32, width: int, height: int, resample: Resampler = "lanczos") -> F32:
    """``face`` (h, w, C) float resized to (height, width): with ``resample`` when it grows,
    with pixel-area averaging when it shrinks in both directions (no aliasing)."""
    shrinking = face.shape[0] >= height and face.shape[1] >= width
    interpolation = cv2.INTER_AREA if shrinking else _INTERP[resample]
    return cv2.resize(face, (width, height), interpolation=interpolation)


def _weighted_stats(pixels: F32, weights: F32) -> tuple[F32, F32]:
    total = float(weights.sum())
    mean = (pixels * weights[:, :, None]).sum(axis=(0, 1)) / total
    var = (((pixels - mean) ** 2) * weights[:, :, None]).sum(axis=(0, 1)) / total
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


def match_color(patch_rgb: F32, target_rgb: F32, weights: F32) -> F32:
    """``patch_rgb`` (h, w, 3) float in [0, 255] with the mean and standard deviation of
    ``target_rgb`` per CIE L*a*b* channel, both measured with ``weights`` (h, w) >= 0.

    The scale is kept within 0.5–1× for L* and 0.5–2× for a*, b*; without weight (an empty mask)
    the patch is returned as is.
    """
    if float(weights.sum()) <= 1e-6:
        return patch_rgb
    to_lab = cv2.COLOR_RGB2Lab
    src = cv2.cvtColor(np.clip(patch_rgb / 255.0, 0.0, 1.0).astype(np.float32), to_lab)
    ref = cv2.cvtColor(np.clip(target_rgb / 255.0, 0.0, 1.0).astype(np.float32), to_lab)
    src_mean, src_std = _weighted_stats(src, weights)
    ref_mean, ref_std = _weighted_stats(ref, weights)
    scale = np.clip(ref_std / np.maximum(src_std, 1e-3), _SCALE_MIN, _SCALE_MAX).astype(np.float32)
    matched = (src - src_mean) * scale + ref_mean
    rgb = cv2.cvtColor(matched.astype(np.float32), cv2.COLOR_Lab2RGB)
    return (np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.float32)


def _seamless(patch_rgb: F32, region: U8, mask: F32) -> F32:
    """Poisson-blend ``patch_rgb`` into ``region`` (both the box's size) where ``mask`` > 0."""
    h, w = mask.shape
    inside = np.zeros((h + 2, w + 2), np.uint8)  # a 1 px frame: seamlessClone clears the border
    inside[1:-1, 1:-1][mask > 0] = 255
    if not inside.any():
        return region.astype(np.float32)
    src = np.zeros((h + 2, w + 2, 3), np.uint8)
    dst = cv2.copyMakeBorder(region, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    src[1:-1, 1:-1] = np.clip(np.rint(patch_rgb), 0, 255).astype(np.uint8)
    x, y, bw, bh = cv2.boundingRect(inside)
    # OpenCV puts the mask's bounding box at center - size // 2: this centre leaves it in place.
    center = (x + bw // 2, y + bh // 2)
    cloned = cv2.seamlessClone(src, dst, inside, center, cv2.NORMAL_CLONE)
    return cloned[1:-1, 1:-1].astype(np.float32)


def paste_mouth(
    frame: Frame,
    pred_bgr: F32,
    box: Box,
    landmarks: npt.NDArray[np.float32] | None = None,
    *,
    feather: float = 0.15,
    resample: Resampler = "lanczos",
    color_match: ColorMatch = "off",
    blend: Blend = "feather",
    out: Frame | None = None,
) -> tuple[Frame, F32]:
    """Blend the generated face ``pred_bgr`` (3, h, w) float in [0, 1] into the lower face.

    Any face size works (the network's 96×96, or an upscaled/restored face); it is resized to
    the box. Returns the new frame and the mask over the box (height, width). Pixels where the
    mask is 0 are copied from ``frame`` unchanged, whatever the options. ``frame`` itself is
    never changed: the result is a new array, or ``out`` (an array of the frame's shape that the
    caller no longer needs, overwritten and returned).
    """
    if color_match not in choices(ColorMatch) or blend not in choices(Blend):
        raise InputError(
            f"Unknown color_match {color_match!r} or blend {blend!r}; choose color_match from "
            f"{', '.join(choices(ColorMatch))} and blend from {', '.join(choices(Blend))}."
        )
    h, w = box.height, box.width
    local = None if landmarks is None else landmarks - np.array([box.left, box.top], dtype=np.float32)
    mask = mouth_mask(h, w, local, feather)
    face_rgb = np.ascontiguousarray(pred_bgr[::-1].transpose(1, 2, 0)) * 255.0
    patch = resize_face(face_rgb, w, h, resample)
    region_u8 = frame[box.top : box.bottom, box.left : box.right]
    region = region_u8.astype(np.float32)
    if color_match == "lab":
        patch = match_color(patch, region, mask)
    if blend == "seamless":
        patch = _seamless(patch, region_u8, mask)
    out = _output(frame, out)
    # Only the mask's bounding rectangle can change (the lower face): blend there alone.
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return out, mask
    sub = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    a = mask[sub][:, :, None]
    base = region[sub]
    mixed = patch[sub] - base
    mixed *= a
    mixed += base
    np.rint(mixed, out=mixed)
    np.clip(mixed, 0, 255, out=mixed)
    target = out[box.top : box.bottom, box.left : box.right][sub]
    np.copyto(target, mixed.astype(np.uint8), where=a > 0)
    return out, mask


def paste(
    frame: Frame,
    face: F32 | U8,
    region: Box,
    landmarks: npt.NDArray[np.float32] | None,
    options: CompositeOptions,
    *,
    out: Frame | None = None,
) -> tuple[Frame, F32 | None]:
    """Put one generated face into ``frame`` as ``options.mode`` says: the one paste dispatcher.

    ``reference``: ``face`` is the generator's uint8 (S, S, 3) BGR (its ``to_uint8_reference``),
    hard-pasted over ``region``; the mask is None (the whole region). ``mouth``: ``face`` is
    float32 (3, S, S) BGR in [0, 1], blended into the lower face; returns the mask over the
    region (height, width). ``frame`` is never changed (see ``paste_mouth`` for ``out``).
    """
    if options.mode == "reference":
        return paste_reference(frame, face, region, out=out), None  # type: ignore[arg-type]
    return paste_mouth(
        frame, face, region, landmarks, feather=options.feather, resample=options.resample,  # type: ignore[arg-type]
        color_match=options.color_match, blend=options.blend, out=out,
    )
