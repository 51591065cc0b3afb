"""Colour: what a video's stored values mean, the RGB a player shows for them, and the output's tags.

A Y'CbCr video is only a picture together with its colour description: the matrix that turns
Y'CbCr into R'G'B', the range of the values, the primaries and the transfer curve
(``lipsync.types.ColourInfo``). Decoding with the wrong matrix shifts every colour (BT.709 video
read as BT.601 shows red 219,38,39 as 203,18,40), so:

- ``describe`` reads the description from the decoded frame (where FFmpeg puts the codec's and
  the container's tags) and fills in what the file leaves out the way players do (mpv, VLC,
  browsers, QuickTime): the matrix and primaries by size (HD, i.e. at least 1280 wide or more
  than 576 rows: BT.709; 576 rows: BT.601 625-line; other SD: BT.601 525-line), the range
  limited unless the pixel format is a full-range ("JPEG", yuvj*) one, the transfer BT.709
  (SD: SMPTE 170M, the same curve).
- ``to_rgb`` decodes a frame to RGB uint8 with that matrix and range, given explicitly (PyAV
  otherwise takes BT.601 for untagged frames). 8-bit Y'CbCr, the usual case, takes the cheap
  path (``_ycbcr8_to_rgb``): swscale only upsamples the chroma (to 4:4:4, bilinear, at the
  chroma position the frame declares), then one OpenCV matrix multiply with offsets, rounded;
  other depths use swscale's accurate conversion (``_DECODE_FLAGS``).
- ``output_colour`` is the description of those RGB frames, and ``tag``/``from_rgb`` write a
  frame back with it, so the output shows the same picture outside the mouth (H.264: the
  rounding of 4:2:0 and the codec, 1–2 levels; FFV1 RGB: exact). ``from_rgb`` is the inverse
  (``_rgb_to_yuv420p``, OpenCV): Y'CbCr of each pixel, the chroma then averaged over 2x2 blocks.

Accuracy against an exact (float64) conversion (``tests/media/test_colour_convert.py``; on the
720p bench clip, ``bench/bench_convert.py``): the 8-bit decode is within 0.7 level where the chroma
is flat (OpenCV's fixed-point coefficients: ~3 % of codes round to the next level; every flat area,
the colour tests' patches included) and within 1.8 levels at chroma steps (the upsampled chroma is
rounded to 8 bits before the matrix): 0.36 levels on average on the clip against swscale's 0.32,
at a third of its cost, and far out-of-gamut codes are clipped where swscale's accurate path wraps
them around (Y' 250 with Cb 255 gave blue 0). The encode (the same fixed-point multiply, then the
2x2 means) is within 0.7 code of exact on flat 2x2 blocks and 1.2 elsewhere (the per-pixel codes
are rounded before the mean), against swscale's 0.5, at a third of its cost.

HDR (BT.2100 PQ or HLG, usually 10-bit BT.2020 from phones) is tone-mapped to SDR BT.709 8-bit,
because the rest of the pipeline (detection, the model, compositing) works on 8-bit SDR frames:

1. R'G'B' from the BT.2020 matrix, 16 bits (swscale);
2. to display light in cd/m² with the EOTF: PQ, ST 2084; HLG, the inverse OETF then the
   BT.2100 OOTF for a 1000 cd/m² display (system gamma 1.2, on luminance);
3. divided by HDR reference white, 203 cd/m² (ITU-R BT.2408), so reference white is 1.0;
4. a tone curve on luminance (hue and saturation kept): identity up to ``TONE_KNEE`` (faces,
   skin and everything up to 75 % of reference white are unchanged), above it an extended
   Reinhard roll-off (slope 1 at the knee) that reaches SDR white at ``HDR_PEAK`` (1000 cd/m²,
   the usual mastering peak of phone HDR and HLG's nominal peak), so highlights keep their
   gradation instead of clipping at 203 cd/m²; brighter light clips;
5. BT.2020 to BT.709 primaries (a 3x3 matrix on linear light, ITU-R BT.2087), out-of-gamut
   values clipped;
6. the BT.709 OETF, 8 bits; the output is tagged BT.709 and a warning says so.

Keeping HDR (a 10-bit BT.2020 output with the source's transfer; PyAV's FFmpeg can encode it with
libx265 Main10 or libx264 High 10) would need 16-bit frames through compositing: not done.
"""

from __future__ import annotations

import functools

import av
import cv2
import numpy as np
from av.video.reformatter import Interpolation

from ..types import ColourInfo, Frame

__all__ = [
    "HDR_PEAK",
    "HDR_REFERENCE_WHITE",
    "SDR_BT709",
    "TONE_KNEE",
    "bt709_oetf",
    "changes",
    "describe",
    "from_rgb",
    "guess_matrix",
    "hlg_inverse_oetf",
    "output_colour",
    "pq_eotf",
    "tag",
    "to_rgb",
    "tone_curve",
    "tone_map",
]

# FFmpeg's enum values (AVColorSpace, AVColorPrimaries, AVColorTransferCharacteristic) and names.
MATRICES = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco",
            9: "bt2020nc", 10: "bt2020c"}
PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film", 9: "bt2020",
             10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}
TRANSFERS = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
             13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"}
_CODE = {kind: {name: code for code, name in table.items()}
         for kind, table in (("matrix", MATRICES), ("primaries", PRIMARIES), ("transfer", TRANSFERS))}
_RANGE_CODE = {"limited": 1, "full": 2}

_SWSCALE_MATRIX = {"bt709": 1, "fcc": 4, "bt470bg": 5, "smpte170m": 5, "smpte240m": 7, "bt2020nc": 9, "bt2020c": 9}
"""The matrices swscale implements (SWS_CS_*); BT.2020 constant luminance is decoded as non-constant."""

SDR_BT709 = ColourInfo()
"""BT.709 primaries, matrix and transfer, limited range, 8 bits: what HDR becomes, and the
default of the writer (ComfyUI images are sRGB/BT.709)."""

HDR_REFERENCE_WHITE = 203.0
"""cd/m² of HDR reference (diffuse) white, ITU-R BT.2408; it becomes SDR 1.0 before the tone curve."""
TONE_KNEE = 0.75
"""Relative luminance (1.0 = reference white) up to which the tone curve is the identity."""
HDR_PEAK = 1000.0
"""cd/m² that the tone curve maps to SDR white (and HLG's nominal display peak)."""
_HLG_GAMMA = 1.2  # BT.2100 system gamma at a 1000 cd/m² nominal peak
_BT2020_LUMA = np.array([0.2627, 0.6780, 0.0593], dtype=np.float32)
_BT2020_TO_BT709 = np.array(
    [[1.6605, -0.5876, -0.0728], [-0.1246, 1.1329, -0.0083], [-0.0182, -0.1006, 1.1187]], dtype=np.float32
)  # ITU-R BT.2087, linear light


def guess_matrix(width: int, height: int) -> str:
    """The matrix players assume for an untagged ``width`` x ``height`` video: BT.709 for HD
    (at least 1280 wide or more than 576 rows), BT.601 ("bt470bg" at 576 rows, else "smpte170m")."""
    if width >= 1280 or height > 576:
        return "bt709"
    return "bt470bg" if height == 576 else "smpte170m"


def _guess_primaries(matrix: str, width: int, height: int) -> str:
    if matrix.startswith("bt2020"):
        return "bt2020"
    if matrix in ("bt709", "bt470bg", "smpte170m"):
        return matrix
    return guess_matrix(width, height)


def describe(frame: av.VideoFrame) -> ColourInfo:
    """The colour description of a decoded ``frame`` (its tags, the rest assumed as players do).

    RGB pixel formats (FFV1 bgr0, PNG in MOV, ...) are "gbr", full range. Tag values outside
    the tables above are reported as "unknown-N" (N: FFmpeg's number)."""
    fmt = frame.format
    depth = max(c.bits for c in fmt.components) if fmt.components else 8
    assumed: list[str] = []
    if fmt.is_rgb:
        matrix, full = "gbr", True
    else:
        if frame.colorspace in MATRICES:
            matrix = MATRICES[frame.colorspace]
        elif frame.colorspace == 2:  # unspecified
            matrix = guess_matrix(frame.width, frame.height)
            assumed.append("matrix")
        else:
            matrix = f"unknown-{frame.colorspace}"
        full = frame.color_range == 2 or fmt.name.startswith("yuvj")
        if frame.color_range == 0 and not fmt.name.startswith("yuvj"):
            assumed.append("range")
    if frame.color_primaries in PRIMARIES:
        primaries = PRIMARIES[frame.color_primaries]
    elif frame.color_primaries == 2:
        primaries = _guess_primaries(matrix, frame.width, frame.height)
        assumed.append("primaries")
    else:
        primaries = f"unknown-{frame.color_primaries}"
    if frame.color_trc in TRANSFERS:
        transfer = TRANSFERS[frame.color_trc]
    elif frame.color_trc == 2:
        transfer = "smpte170m" if primaries in ("bt470bg", "smpte170m") else "bt709"
        assumed.append("transfer")
    else:
        transfer = f"unknown-{frame.color_trc}"
    return ColourInfo(matrix=matrix, range="full" if full else "limited", primaries=primaries,
                      transfer=transfer, bit_depth=depth, assumed=tuple(assumed))


def output_colour(source: ColourInfo) -> ColourInfo:
    """The description of the RGB frames ``to_rgb`` makes from ``source``, i.e. what the output
    is tagged with: HDR becomes ``SDR_BT709``; otherwise the source's own description (assumed
    fields stated, so players need not guess), 8 bits. RGB sources (still images, FFV1 RGB) keep
    their primaries and are written as BT.709 limited range Y'CbCr (H.264; FFV1 stays RGB), the
    sRGB transfer tagged as BT.709 (the tag video players expect)."""
    if source.hdr:
        return SDR_BT709
    primaries = source.primaries if source.primaries in _CODE["primaries"] else "bt709"
    transfer = source.transfer if source.transfer in _CODE["transfer"] else "bt709"
    if source.matrix == "gbr":
        transfer = "bt709" if transfer == "iec61966-2-1" else transfer
        return ColourInfo(primaries=primaries, transfer=transfer)
    matrix = source.matrix if source.matrix in _SWSCALE_MATRIX else "bt709"
    return ColourInfo(matrix=matrix, range=source.range, primaries=primaries, transfer=transfer, bit_depth=8)


def changes(source: ColourInfo) -> list[str]:
    """Sentences for what the output cannot keep of ``source``'s colour (empty when all is kept)."""
    notes = []
    if source.hdr:
        notes.append(
            f"the video is HDR ({source.hdr.upper()}, {source.primaries} primaries, {source.bit_depth}-bit); the output "
            "is SDR BT.709 8-bit, tone-mapped (light above 150 cd/m² rolled off, SDR white at 1000 cd/m²)"
        )
    elif source.bit_depth > 8:
        notes.append(f"the video is {source.bit_depth}-bit; the output is 8-bit (same colours, fewer steps)")
    if source.matrix not in _SWSCALE_MATRIX and source.matrix != "gbr":
        notes.append(f"its colour matrix {source.matrix} is not supported; it was decoded as BT.601, so colours may shift")
    elif source.matrix == "bt2020c":
        notes.append("its BT.2020 constant-luminance matrix was decoded as non-constant luminance (slight shifts)")
    return notes


_DECODE_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
"""swscale's settings for Y'CbCr -> RGB where ``_ycbcr8_to_rgb`` does not apply (more than 8
bits, grey, alpha). Measured on flat patches against an exact (numpy) conversion: these are
within 0.5 of it (three times the cost of the 8-bit path); swscale's default (bilinear, fast rounding) is 2.6 levels
too dark in limited range, and ACCURATE_RND alone 3 levels (FFmpeg 8.1 in PyAV 18.1)."""
_ENCODE_FLAGS = Interpolation.AREA | Interpolation.ACCURATE_RND
"""RGB -> Y'CbCr where ``_rgb_to_yuv420p`` does not apply: chroma is the mean of each 2x2 block
(bilinear filters it differently)."""
_HDR_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND
"""Y'CbCr -> 16-bit RGB: FULL_CHR_H_INT garbles the chroma of rgb48 output here; without it the
result is within 2 10-bit levels of an exact conversion."""


_KR_KB = {1: (0.2126, 0.0722), 4: (0.30, 0.11), 5: (0.299, 0.114), 7: (0.212, 0.087), 9: (0.2627, 0.0593)}
"""Luma weights of red and blue (Kr, Kb) of each swscale matrix (``_SWSCALE_MATRIX``'s values):
BT.709, FCC, BT.601, SMPTE 240M, BT.2020 (ITU-R BT.709-6, BT.601-7, BT.2020-2; SMPTE 240M; FCC
73.682). The green weight is 1 - Kr - Kb."""
_CHROMA_FLAGS = Interpolation.BILINEAR
"""swscale's settings for upsampling 8-bit chroma to 4:4:4 (no matrix involved): within half a
code of exact bilinear interpolation at the declared chroma position; ACCURATE_RND changes
nothing here and costs 80 % more."""


@functools.lru_cache(maxsize=None)
def _ycbcr_matrix(sws_matrix: int, full: bool) -> np.ndarray:
    """(3, 4) float64: [Y', Cb, Cr, 1] codes (8-bit) -> [R', G', B'] levels (0-255, unclipped)."""
    kr, kb = _KR_KB[sws_matrix]
    kg = 1.0 - kr - kb
    luma, chroma, black = (1.0, 1.0, 0.0) if full else (255.0 / 219.0, 255.0 / 224.0, 16.0)
    cr_r, cb_b = 2.0 * (1.0 - kr) * chroma, 2.0 * (1.0 - kb) * chroma
    weights = np.array([
        [luma, 0.0, cr_r],
        [luma, -cb_b * kb / kg, -cr_r * kr / kg],
        [luma, cb_b, 0.0],
    ])
    matrix = np.hstack([weights, -(weights @ np.array([black, 128.0, 128.0]))[:, None]])
    matrix.setflags(write=False)  # cached and shared
    return matrix


@functools.lru_cache(maxsize=None)
def _rgb_matrix(sws_matrix: int, full: bool) -> np.ndarray:
    """(3, 4) float64: [R', G', B', 1] levels -> [Y', Cb, Cr] 8-bit codes (unrounded): the
    inverse of ``_ycbcr_matrix``."""
    forward = _ycbcr_matrix(sws_matrix, full)
    inverse = np.linalg.inv(forward[:, :3])
    matrix = np.hstack([inverse, -(inverse @ forward[:, 3])[:, None]])
    matrix.setflags(write=False)  # cached and shared
    return matrix


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """Views (no copy) of an 8-bit planar ``frame``'s planes, each (height, width) uint8."""
    return [np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
            for plane in frame.planes]


def _is_ycbcr8(frame: av.VideoFrame) -> bool:
    """8-bit Y'CbCr (any subsampling, planar or packed, no alpha): ``_ycbcr8_to_rgb`` decodes it."""
    fmt = frame.format
    return not fmt.is_rgb and len(fmt.components) == 3 and all(c.bits == 8 for c in fmt.components)


def _ycbcr8_to_rgb(frame: av.VideoFrame, sws_matrix: int, colour_range: int) -> Frame:
    """8-bit Y'CbCr ``frame`` -> RGB uint8 (H, W, 3): chroma upsampled to 4:4:4 by swscale (one
    thread: the pipeline's threads already share the cores), interleaved, then the matrix and
    offsets in one ``cv2.transform`` (rounded to nearest, clipped to 0-255)."""
    if frame.format.name not in ("yuv444p", "yuvj444p"):
        frame = frame.reformat(format="yuv444p", src_color_range=colour_range, dst_color_range=colour_range,
                               interpolation=_CHROMA_FLAGS, threads=1)
    return cv2.transform(cv2.merge(_planes(frame)), _ycbcr_matrix(sws_matrix, colour_range == 2))


def to_rgb(frame: av.VideoFrame, colour: ColourInfo) -> Frame:
    """RGB uint8 (H, W, 3) of ``frame`` as a player shows it (HDR: tone-mapped, see the module
    docstring), decoded with ``colour``'s matrix and range (from ``describe``)."""
    if colour.hdr:
        return tone_map(frame, colour)
    if frame.format.is_rgb:
        return frame.to_ndarray(format="rgb24")
    sws_matrix, colour_range = _SWSCALE_MATRIX.get(colour.matrix, 5), _RANGE_CODE[colour.range]
    if _is_ycbcr8(frame):
        return _ycbcr8_to_rgb(frame, sws_matrix, colour_range)
    return frame.to_ndarray(
        format="rgb24", src_colorspace=sws_matrix, src_color_range=colour_range, interpolation=_DECODE_FLAGS,
    )


def _rgb_to_yuv420p(image: Frame, sws_matrix: int, colour_range: int) -> av.VideoFrame:
    """RGB uint8 ``image`` (H, W, 3), H and W even -> a yuv420p ``av.VideoFrame``, written in
    place: Y'CbCr of every pixel in one ``cv2.transform`` (rounded), luma kept, chroma the mean
    of each 2x2 block (``cv2.INTER_AREA``, rounded)."""
    height, width = image.shape[:2]
    frame = av.VideoFrame(width, height, "yuv420p")
    luma, cb, cr = _planes(frame)
    ycbcr = cv2.transform(image, _rgb_matrix(sws_matrix, colour_range == 2))
    cv2.extractChannel(ycbcr, 0, dst=luma)
    blocks = cv2.resize(ycbcr, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    cv2.extractChannel(blocks, 1, dst=cb)
    cv2.extractChannel(blocks, 2, dst=cr)
    frame.colorspace, frame.color_range = sws_matrix, colour_range
    return frame


def from_rgb(image: Frame, colour: ColourInfo, pix_fmt: str = "yuv420p") -> av.VideoFrame:
    """An ``av.VideoFrame`` in ``pix_fmt`` holding RGB uint8 ``image`` (H, W, 3) encoded with
    ``colour``'s matrix and range (its inverse of ``to_rgb``). yuv420p of even sizes (what the
    writer makes) takes the cheap path (``_rgb_to_yuv420p``), the rest swscale."""
    sws_matrix, colour_range = _SWSCALE_MATRIX.get(colour.matrix, 1), _RANGE_CODE[colour.range]
    if pix_fmt == "yuv420p" and image.shape[0] % 2 == 0 and image.shape[1] % 2 == 0:
        return _rgb_to_yuv420p(np.ascontiguousarray(image), sws_matrix, colour_range)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    return frame.reformat(
        format=pix_fmt, dst_colorspace=sws_matrix, dst_color_range=colour_range, interpolation=_ENCODE_FLAGS,
    )


def tag(codec_context: av.video.codeccontext.VideoCodecContext, colour: ColourInfo, *, rgb: bool = False) -> None:
    """Write ``colour``'s description into an encoder's context (H.264 VUI, container tags);
    ``rgb``: the encoder stores RGB (FFV1 bgr0), so matrix "gbr", full range."""
    codec_context.colorspace = 0 if rgb else _CODE["matrix"].get(colour.matrix, 2)
    codec_context.color_range = 2 if rgb else _RANGE_CODE[colour.range]
    codec_context.color_primaries = _CODE["primaries"].get(colour.primaries, 2)
    codec_context.color_trc = _CODE["transfer"].get(colour.transfer, 2)


# --- HDR to SDR


def pq_eotf(signal: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084: non-linear signal [0, 1] -> display light in cd/m² (0 … 10000)."""
    m1, m2, c1, c2, c3 = 2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    p = np.power(np.clip(signal, 0.0, 1.0), 1.0 / m2)
    return 10000.0 * np.power(np.maximum(p - c1, 0.0) / (c2 - c3 * p), 1.0 / m1)


def hlg_inverse_oetf(signal: np.ndarray) -> np.ndarray:
    """ARIB STD-B67 / BT.2100 HLG: non-linear signal [0, 1] -> normalised scene light [0, 1]."""
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    e = np.clip(signal, 0.0, 1.0)
    return np.where(e <= 0.5, e * e / 3.0, (np.exp((e - c) / a) + b) / 12.0)


def bt709_oetf(light: np.ndarray) -> np.ndarray:
    """ITU-R BT.709 OETF: linear [0, 1] -> non-linear signal [0, 1]."""
    v = np.clip(light, 0.0, 1.0)
    return np.where(v < 0.018, 4.5 * v, 1.099 * np.power(v, 0.45) - 0.099)


def tone_curve(luminance: np.ndarray) -> np.ndarray:
    """Relative luminance (1.0 = reference white) -> SDR [0, 1]: the identity up to the knee k,
    above it ``k + (1 - k)·x·(1 + x/w²)/(1 + x)`` with ``x = (L - k)/(1 - k)`` and ``w`` the x of
    ``HDR_PEAK`` (extended Reinhard: slope 1 at the knee, 1.0 at the peak), clipped to 1."""
    k = TONE_KNEE
    white = (HDR_PEAK / HDR_REFERENCE_WHITE - k) / (1.0 - k)
    x = np.maximum(luminance - k, 0.0) / (1.0 - k)
    rolled = k + (1.0 - k) * x * (1.0 + x / (white * white)) / (1.0 + x)
    return np.minimum(np.where(luminance <= k, luminance, rolled), 1.0)


_LUT_CACHE: dict[str, np.ndarray] = {}
_SCALE_STEPS = 65536


def _signal_lut(transfer: str) -> np.ndarray:
    """float32[65536]: 16-bit R'G'B' code -> linear light relative to reference white
    (PQ: display light / 203; HLG: scene light, the OOTF comes after, on luminance)."""
    if transfer not in _LUT_CACHE:
        signal = np.arange(65536, dtype=np.float64) / 65535.0
        linear = pq_eotf(signal) / HDR_REFERENCE_WHITE if transfer == "smpte2084" else hlg_inverse_oetf(signal)
        _LUT_CACHE[transfer] = linear.astype(np.float32)
    return _LUT_CACHE[transfer]


def _luminance_top(transfer: str) -> float:
    """The largest luminance ``_signal_lut`` gives (PQ: 10000 / 203; HLG scene light: 1)."""
    return 10000.0 / HDR_REFERENCE_WHITE if transfer == "smpte2084" else 1.0


def _scale_lut(transfer: str) -> np.ndarray:
    """float32[_SCALE_STEPS]: the factor each linear R'G'B' value is multiplied by, indexed by its
    pixel's luminance in steps of ``_luminance_top / (steps - 1)``: tone curve (and for HLG the
    OOTF gain ``peak·Ys^(γ-1)``) divided by the luminance, so hue and saturation are kept."""
    key = f"scale-{transfer}"
    if key not in _LUT_CACHE:
        lum = np.linspace(0.0, _luminance_top(transfer), _SCALE_STEPS)
        lum[0] = lum[1] / 2
        gain = (HDR_PEAK / HDR_REFERENCE_WHITE) * np.power(lum, _HLG_GAMMA - 1.0) if transfer == "arib-std-b67" else 1.0
        _LUT_CACHE[key] = (tone_curve(lum * gain) / lum).astype(np.float32)
    return _LUT_CACHE[key]


def _oetf_lut() -> np.ndarray:
    if "oetf" not in _LUT_CACHE:
        _LUT_CACHE["oetf"] = np.rint(bt709_oetf(np.arange(65536) / 65535.0) * 255.0).astype(np.uint8)
    return _LUT_CACHE["oetf"]


def tone_map(frame: av.VideoFrame, colour: ColourInfo) -> Frame:
    """An HDR (PQ or HLG) ``frame`` as SDR BT.709 RGB uint8 (H, W, 3); the steps are in the
    module docstring. Lookup tables for the curves, OpenCV for the per-pixel matrices."""
    rgb16 = frame.to_ndarray(
        format="rgb48le", src_colorspace=_SWSCALE_MATRIX.get(colour.matrix, 9),
        src_color_range=_RANGE_CODE[colour.range], interpolation=_HDR_FLAGS,
    )
    linear = _signal_lut(colour.transfer)[rgb16]  # (H, W, 3) float32, 1.0 = reference white (HLG: scene)
    weights = _BT2020_LUMA if colour.primaries == "bt2020" else np.array([0.2126, 0.7152, 0.0722], np.float32)
    step = (_SCALE_STEPS - 1) / _luminance_top(colour.transfer)
    index = cv2.transform(linear, weights[None, :] * step)
    np.clip(index, 0, _SCALE_STEPS - 1, out=index)
    scale = _scale_lut(colour.transfer)[index.astype(np.uint16)]
    matrix = _BT2020_TO_BT709 if colour.primaries == "bt2020" else np.eye(3, dtype=np.float32)
    mapped = cv2.transform(linear, matrix * 65535.0)
    mapped *= scale[..., None]
    codes = np.clip(mapped, 0.0, 65535.0, out=mapped).astype(np.uint16)
    return np.ascontiguousarray(_oetf_lut()[codes])
