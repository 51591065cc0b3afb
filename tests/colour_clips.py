"""Clips with a known colour description, and a player's view of a file, for the colour, HDR and
pixel-shape tests.

The clips are built here from R'G'B' values with numpy's own Y'CbCr matrices (not swscale's), and
encoded losslessly (x264 / x265 at QP 0), so the file holds exactly the Y'CbCr the test meant.
``player_view`` decodes a file the way a player does, again in numpy: the tagged matrix and range
(untagged: BT.709 for HD, BT.601 for SD), nearest-neighbour chroma. Comparisons are made inside
flat patches, where chroma upsampling does not matter.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

KR_KB = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114), "bt2020": (0.2627, 0.0593)}
MATRIX_CODE = {"bt709": 1, "bt601": 6, "bt2020": 9}
MATRIX_OF_CODE = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020"}

PATCHES = np.array(
    [[219, 38, 39], [38, 200, 60], [228, 200, 40], [200, 38, 200], [40, 200, 200], [128, 128, 128],
     [235, 190, 160], [30, 30, 30]], dtype=np.float64,
) / 255.0
"""R'G'B' of the test patches (colour bars, grey, a skin tone, a dark grey), [0, 1]."""


def patch_image(width: int, height: int, colours: np.ndarray = PATCHES) -> np.ndarray:
    """(height, width, 3) float R'G'B': one vertical bar per colour, equal widths (even-aligned)."""
    image = np.zeros((height, width, 3))
    edges = patch_edges(width, len(colours))
    for (left, right), colour in zip(edges, colours):
        image[:, left:right] = colour
    return image


def patch_edges(width: int, count: int) -> list[tuple[int, int]]:
    step = (width // count) // 2 * 2
    return [(k * step, (k + 1) * step) for k in range(count)]


def patch_means(rgb: np.ndarray, count: int, rows: slice | None = None, margin: int = 4) -> np.ndarray:
    """(count, 3) mean of each patch's interior (``margin`` columns in from its edges)."""
    rows = rows if rows is not None else slice(None)
    return np.array([rgb[rows, left + margin:right - margin].reshape(-1, 3).mean(axis=0)
                     for left, right in patch_edges(rgb.shape[1], count)])


def rgb_to_yuv420(rgb: np.ndarray, matrix: str, full: bool, bits: int = 8) -> np.ndarray:
    """Planar 4:2:0 Y'CbCr codes (PyAV's ``from_ndarray`` layout, (H*3/2, W)) of R'G'B' [0, 1]."""
    kr, kb = KR_KB[matrix]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = kr * r + (1 - kr - kb) * g + kb * b
    cb, cr = (b - y) / (2 * (1 - kb)), (r - y) / (2 * (1 - kr))
    scale = 2 ** (bits - 8)
    if full:
        top = 2 ** bits - 1
        yq, cbq, crq = y * top, cb * top + 2 ** (bits - 1), cr * top + 2 ** (bits - 1)
    else:
        yq, cbq, crq = (16 + 219 * y) * scale, (128 + 224 * cb) * scale, (128 + 224 * cr) * scale
    h, w = y.shape
    sub = lambda c: c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))  # noqa: E731
    dtype = np.uint16 if bits > 8 else np.uint8
    q = lambda c: np.clip(np.rint(c), 0, 2 ** bits - 1).astype(dtype)  # noqa: E731
    return np.concatenate([q(yq), q(sub(cbq)).reshape(h // 4, w), q(sub(crq)).reshape(h // 4, w)])


def yuv420_to_rgb(planes: np.ndarray, matrix: str, full: bool, bits: int = 8) -> np.ndarray:
    """R'G'B' [0, 1] float (H, W, 3) of planar 4:2:0 codes (nearest-neighbour chroma)."""
    h = planes.shape[0] * 2 // 3
    w = planes.shape[1]
    y = planes[:h].astype(np.float64)
    cb = planes[h:h + h // 4].reshape(h // 2, w // 2).astype(np.float64).repeat(2, 0).repeat(2, 1)
    cr = planes[h + h // 4:].reshape(h // 2, w // 2).astype(np.float64).repeat(2, 0).repeat(2, 1)
    scale = 2 ** (bits - 8)
    if full:
        top = 2 ** bits - 1
        yn, cbn, crn = y / top, (cb - 2 ** (bits - 1)) / top, (cr - 2 ** (bits - 1)) / top
    else:
        yn, cbn, crn = (y / scale - 16) / 219, (cb / scale - 128) / 224, (cr / scale - 128) / 224
    kr, kb = KR_KB[matrix]
    r = yn + 2 * (1 - kr) * crn
    b = yn + 2 * (1 - kb) * cbn
    g = (yn - kr * r - kb * b) / (1 - kr - kb)
    return np.stack([r, g, b], axis=-1)


def write_clip(
    path: Path, rgb: np.ndarray, frames: int = 3, *, matrix: str = "bt709", full: bool = False, bits: int = 8,
    tags: dict[str, int] | None = None, codec: str = "libx264", sar: Fraction | None = None, fps: int = 25,
    pix_fmt: str | None = None, rotation: int = 0,
) -> Path:
    """A lossless clip of ``frames`` copies of R'G'B' ``rgb`` (H, W, 3) [0, 1], stored with ``matrix``
    and ``full`` range in ``bits``; ``tags``: colorspace/color_primaries/color_trc/color_range
    codes written into the file (None: untagged); ``sar``: the sample aspect ratio tag;
    ``pix_fmt`` e.g. "yuvj420p" (full range by format); ``rotation``: display matrix, degrees
    counter-clockwise."""
    planes = rgb_to_yuv420(rgb, matrix, full, bits)
    fmt = pix_fmt or ("yuv420p10le" if bits == 10 else "yuv420p")
    opts = {"qp": "0", "preset": "ultrafast"} if codec == "libx264" else {"x265-params": "lossless=1:log-level=error"}
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps, options=opts)
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], fmt
        ctx = stream.codec_context
        for name, value in (tags or {}).items():
            setattr(ctx, name, value)
        if sar is not None:
            ctx.sample_aspect_ratio = sar
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(planes, format=fmt)
            for name, value in (tags or {}).items():
                setattr(frame, name, value)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def tags_for(matrix: str, full: bool = False, primaries: int | None = None, transfer: int | None = None) -> dict[str, int]:
    code = MATRIX_CODE[matrix]
    return {"colorspace": code, "color_primaries": primaries or code, "color_trc": transfer or (1 if code != 9 else 14),
            "color_range": 2 if full else 1}


def player_view(path: Path, index: int = 0) -> np.ndarray:
    """R'G'B' [0, 1] of frame ``index`` of ``path`` as a player shows it: the tagged matrix and
    range, else BT.709 for HD (>= 1280 wide or > 576 rows) and BT.601 for SD; limited range
    unless tagged full or yuvj*. RGB-stored frames (FFV1 bgr0) as they are."""
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                break
    if frame.format.is_rgb:
        return frame.to_ndarray(format="rgb24").astype(np.float64) / 255.0
    hd = frame.width >= 1280 or frame.height > 576
    matrix = MATRIX_OF_CODE.get(frame.colorspace, "bt709" if hd else "bt601")
    full = frame.color_range == 2 or frame.format.name.startswith("yuvj")
    bits = 10 if "10" in frame.format.name else 8
    planes = frame.to_ndarray()  # the stored codes, no conversion
    return yuv420_to_rgb(planes, matrix, full, bits)


# --- HDR (BT.2100) clips: patches given in display light, cd/m²

BT709_TO_BT2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])
HDR_PATCHES = {
    "grey 20": (20.0, (1.0, 1.0, 1.0)),
    "grey 100": (100.0, (1.0, 1.0, 1.0)),
    "skin 80": (80.0, (0.80, 0.55, 0.45)),
    "red 60": (60.0, (1.0, 0.05, 0.05)),
    "white 203": (203.0, (1.0, 1.0, 1.0)),
    "highlight 600": (600.0, (1.0, 1.0, 1.0)),
    "highlight 1000": (1000.0, (1.0, 1.0, 1.0)),
    "black 0": (0.0, (1.0, 1.0, 1.0)),
}
"""name -> (luminance in cd/m², linear BT.709 colour whose luminance is scaled to it)."""


def hdr_linear(patch: tuple[float, tuple[float, float, float]]) -> np.ndarray:
    """Display light in BT.2020 primaries, cd/m², of a patch (its BT.709 colour at its luminance)."""
    nits, colour = patch
    rgb709 = np.array(colour, dtype=np.float64)
    luminance = rgb709 @ np.array([0.2126, 0.7152, 0.0722])
    return BT709_TO_BT2020 @ (rgb709 * nits / luminance)


def pq_inverse_eotf(nits: np.ndarray) -> np.ndarray:
    m1, m2, c1, c2, c3 = 2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    y = np.power(np.clip(nits / 10000.0, 0, 1), m1)
    return np.power((c1 + c2 * y) / (1 + c3 * y), m2)


def hlg_signal(nits: np.ndarray, peak: float = 1000.0, gamma: float = 1.2) -> np.ndarray:
    """HLG signal of BT.2020 display light (inverse OOTF on luminance, then the OETF)."""
    display = nits / peak
    yd = display @ np.array([0.2627, 0.6780, 0.0593])
    ys = np.power(max(yd, 1e-12), 1 / gamma)
    scene = display / max(ys ** (gamma - 1), 1e-12)
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    e = np.clip(scene, 0, 1)
    return np.where(e <= 1 / 12, np.sqrt(3 * e), a * np.log(np.maximum(12 * e - b, 1e-12)) + c)


def hdr_image(kind: str, width: int, height: int) -> np.ndarray:
    """(height, width, 3) R'G'B' [0, 1] of the HDR_PATCHES in ``kind`` ("pq" or "hlg")."""
    signal = [pq_inverse_eotf(hdr_linear(p)) if kind == "pq" else hlg_signal(hdr_linear(p)) for p in HDR_PATCHES.values()]
    return patch_image(width, height, np.array(signal))


def write_hdr_clip(path: Path, kind: str, codec: str = "libx265", width: int = 256, height: int = 128) -> Path:
    """A 10-bit BT.2020 PQ or HLG clip (limited range, tagged as phones tag them) of HDR_PATCHES."""
    tags = {"colorspace": 9, "color_primaries": 9, "color_trc": 16 if kind == "pq" else 18, "color_range": 1}
    return write_clip(path, hdr_image(kind, width, height), matrix="bt2020", bits=10, tags=tags, codec=codec)
