"""The cheap 8-bit conversions of ``lipsync.media.colour`` (``to_rgb`` for 8-bit Y'CbCr, ``from_rgb``
to yuv420p) against an exact float64 conversion written here from the standards' luma weights, for
every matrix and range the product decodes, at odd sizes and with extreme codes; and against
swscale's accurate conversion, which they replace, so both put the chroma in the same place."""

from __future__ import annotations

import av
import numpy as np
import pytest
from av.video.reformatter import Interpolation

from lipsync.media import colour
from lipsync.types import ColourInfo

KR_KB = {"bt709": (0.2126, 0.0722), "bt470bg": (0.299, 0.114), "smpte170m": (0.299, 0.114),
         "smpte240m": (0.212, 0.087), "fcc": (0.30, 0.11), "bt2020nc": (0.2627, 0.0593)}
"""Kr, Kb of ITU-R BT.709-6, BT.601-7 (625 and 525 lines), SMPTE 240M, FCC 73.682, BT.2020-2."""
CASES = [(matrix, rng) for matrix in KR_KB for rng in ("limited", "full")]
IDS = [f"{m}-{r}" for m, r in CASES]
EPS = 1e-4  # float32 arithmetic


def exact_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, matrix: str, rng: str, clip: bool = True) -> np.ndarray:
    """R'G'B' levels (float, unrounded; clipped to 0-255 unless ``clip`` is False) of full-resolution
    8-bit codes."""
    kr, kb = KR_KB[matrix]
    if rng == "full":
        yn, pb, pr = y / 255.0, (cb - 128.0) / 255.0, (cr - 128.0) / 255.0
    else:
        yn, pb, pr = (y - 16.0) / 219.0, (cb - 128.0) / 224.0, (cr - 128.0) / 224.0
    r = yn + 2 * (1 - kr) * pr
    b = yn + 2 * (1 - kb) * pb
    g = (yn - kr * r - kb * b) / (1 - kr - kb)
    rgb = np.stack([r, g, b], axis=-1) * 255.0
    return np.clip(rgb, 0.0, 255.0) if clip else rgb


def exact_ycbcr(rgb: np.ndarray, matrix: str, rng: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unrounded 8-bit codes of R'G'B' levels (float): Y' per pixel, Cb and Cr per pixel too."""
    kr, kb = KR_KB[matrix]
    x = rgb / 255.0
    yn = x @ np.array([kr, 1 - kr - kb, kb])
    pb, pr = (x[..., 2] - yn) / (2 * (1 - kb)), (x[..., 0] - yn) / (2 * (1 - kr))
    if rng == "full":
        return yn * 255.0, pb * 255.0 + 128.0, pr * 255.0 + 128.0
    return 16.0 + 219.0 * yn, 128.0 + 224.0 * pb, 128.0 + 224.0 * pr


def upsample(c: np.ndarray, height: int, width: int, left: bool) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear 4:2:0 chroma at full size, edges repeated: vertically between two luma rows,
    horizontally between two luma columns (``left`` False: the position of an untagged frame) or
    on the even luma columns (``left``: MPEG-2's and H.264's default, which the H.264 decoder
    declares). Also where it is flat: the 4x4 samples around it are equal, so that swscale's
    slightly different positions at odd sizes (it scales 161 samples to 321 pixels) agree."""
    c = c.astype(np.float64)
    xs = np.clip(np.arange(width) / 2.0 if left else (np.arange(width) + 0.5) / 2.0 - 0.5, 0, c.shape[1] - 1)
    ys = np.clip((np.arange(height) + 0.5) / 2.0 - 0.5, 0, c.shape[0] - 1)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    x1, y1 = np.minimum(x0 + 1, c.shape[1] - 1), np.minimum(y0 + 1, c.shape[0] - 1)
    fx, fy = xs - x0, (ys - y0)[:, None]
    rows = c[:, x0] * (1 - fx) + c[:, x1] * fx
    near = [np.clip(index + shift, 0, size - 1) for index, size in ((y0, c.shape[0]), (x0, c.shape[1]))
            for shift in (-1, 0, 1, 2)]
    around = [c[np.ix_(ya, xa)] for ya in near[:4] for xa in near[4:]]
    flat = np.logical_and.reduce([a == around[0] for a in around])
    return rows[y0] * (1 - fy) + rows[y1] * fy, flat


def planes_of(frame: av.VideoFrame) -> list[np.ndarray]:
    return [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in frame.planes]


def make_frame(fmt: str, y: np.ndarray, cb: np.ndarray, cr: np.ndarray, rng: str) -> av.VideoFrame:
    frame = av.VideoFrame(y.shape[1], y.shape[0], fmt)
    for plane, values in zip(planes_of(frame), (y, cb, cr)):
        plane[...] = values
    frame.color_range = 2 if rng == "full" else 1
    return frame


def extreme_codes(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random codes over 0-255, with the first rows holding every combination of the extremes
    (0, 1, 16, 128, 235, 240, 254, 255) of Y', Cb and Cr: out-of-gamut and clipped colours."""
    rng = np.random.default_rng(seed)
    planes = [rng.integers(0, 256, (height, width), dtype=np.uint8) for _ in range(3)]
    ends = np.array([0, 1, 16, 128, 235, 240, 254, 255], np.uint8)
    combos = np.stack(np.meshgrid(ends, ends, ends, indexing="ij"), axis=-1).reshape(-1, 3)
    for k, (y, cb, cr) in enumerate(combos):
        row, col = divmod(k, width)
        planes[0][row, col], planes[1][row, col], planes[2][row, col] = y, cb, cr
    return planes[0], planes[1], planes[2]


@pytest.mark.parametrize(("matrix", "rng"), CASES, ids=IDS)
def test_decode_444_is_the_exact_conversion_rounded(matrix: str, rng: str) -> None:
    """Without chroma to interpolate, the 8-bit decode is the exact conversion rounded (clipped),
    every code, the extremes included, at an odd size: within 0.7 level (OpenCV multiplies with
    coefficients of 10 fractional bits: ~3 % of codes round to the level next to the nearest)."""
    y, cb, cr = extreme_codes(241, 321, seed=1)
    info = ColourInfo(matrix=matrix, range=rng)  # type: ignore[arg-type]
    got = colour.to_rgb(make_frame("yuv444p", y, cb, cr, rng), info)
    assert got.dtype == np.uint8 and got.shape == (241, 321, 3) and got.flags.c_contiguous
    error = np.abs(got - exact_rgb(y.astype(float), cb.astype(float), cr.astype(float), matrix, rng))
    assert error.max() <= 0.7  # OpenCV's 10-bit fixed-point coefficients
    assert (error > 0.5 + EPS).mean() < 0.05


@pytest.mark.parametrize(("matrix", "rng"), CASES, ids=IDS)
def test_decode_422_matches_swscale(matrix: str, rng: str) -> None:
    """Other 8-bit subsamplings take the same path: 4:2:2 as swscale's accurate conversion
    shows it (inside the RGB cube), within the chroma rounding."""
    y, cb, cr = extreme_codes(241, 321, seed=4)
    frame = make_frame("yuv422p", y, cb[:, :161], cr[:, :161], rng)
    got = colour.to_rgb(frame, ColourInfo(matrix=matrix, range=rng)).astype(np.float64)  # type: ignore[arg-type]
    old = frame.to_ndarray(format="rgb24", src_colorspace=colour._SWSCALE_MATRIX[matrix],
                           src_color_range=2 if rng == "full" else 1, interpolation=colour._DECODE_FLAGS)
    raw = exact_rgb(y.astype(float), cb[:, :161].repeat(2, 1)[:, :321].astype(float),
                    cr[:, :161].repeat(2, 1)[:, :321].astype(float), matrix, rng, clip=False)
    inside = ((raw >= 40) & (raw <= 215)).all(axis=-1)
    assert inside.mean() > 0.02  # ~1,500 pixels
    assert np.abs(got - old)[inside].max() <= 1.8 + 0.5


def blocky_420(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4:2:0 codes: noisy luma over chroma in flat 8x8 blocks (16x16 pixels) of random colour,
    the extremes included, so the chroma is flat inside each block and steps at its edges."""
    rng = np.random.default_rng(seed)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    y = rng.integers(0, 256, (height, width), dtype=np.uint8)
    blocks = rng.choice(np.array([0, 16, 100, 120, 128, 136, 156, 240, 255], np.uint8), (2, -(-ch // 8), -(-cw // 8)))
    cb, cr = (b.repeat(8, 0).repeat(8, 1)[:ch, :cw] for b in blocks)
    return y, np.ascontiguousarray(cb), np.ascontiguousarray(cr)


def lossless_h264(path, y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> av.VideoFrame:
    """The frame an H.264 decoder gives for these (even-sized) 4:2:0 codes, stored losslessly."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"qp": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = y.shape[1], y.shape[0], "yuv420p"
        frame = make_frame("yuv420p", y, cb, cr, "limited")
        frame.pts = 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with av.open(str(path)) as container:
        decoded = next(container.decode(video=0))
    assert all(np.array_equal(a, b) for a, b in zip(planes_of(decoded), (y, cb, cr)))
    return decoded


@pytest.mark.parametrize(("matrix", "rng"), CASES, ids=IDS)
@pytest.mark.parametrize("source", ["321x241", "320x240", "h264-320x240"])
def test_decode_420_against_exact_chroma_interpolation(matrix: str, rng: str, source: str, tmp_path) -> None:
    """4:2:0: within 0.7 level of the exact conversion where the chroma is flat (as on 4:4:4),
    within 1.8 levels where it steps (the interpolated chroma is rounded to 8 bits before the
    matrix: at most half a code, times up to 2.14), with the chroma where the frame says it is
    (H.264: on the even columns), and no further from swscale's accurate conversion (the old
    path)."""
    height, width = (241, 321) if source == "321x241" else (240, 320)
    y, cb, cr = blocky_420(height, width, seed=2)
    if source.startswith("h264"):
        frame = lossless_h264(tmp_path / "clip.mp4", y, cb, cr)
        frame.color_range = 2 if rng == "full" else 1
    else:
        frame = make_frame("yuvj420p" if rng == "full" and matrix == "bt709" else "yuv420p", y, cb, cr, rng)
    got = colour.to_rgb(frame, ColourInfo(matrix=matrix, range=rng)).astype(np.float64)  # type: ignore[arg-type]
    left = source.startswith("h264")
    (cb_full, flat_cb), (cr_full, flat_cr) = upsample(cb, height, width, left), upsample(cr, height, width, left)
    error = np.abs(got - exact_rgb(y.astype(float), cb_full, cr_full, matrix, rng))
    flat = flat_cb & flat_cr
    assert 0.3 < flat.mean() < 0.9
    assert error[flat].max() <= 0.7
    if width % 2 == 0:  # odd: swscale's chroma positions drift by up to a pixel (see upsample)
        assert error.max() <= 1.8
    # swscale's accurate path wraps far out-of-gamut colours around (Y' 250, Cb 255: blue 0, not
    # 255): compared where the colour is inside the RGB cube
    old = frame.to_ndarray(format="rgb24", src_colorspace=colour._SWSCALE_MATRIX[matrix],
                           src_color_range=2 if rng == "full" else 1, interpolation=colour._DECODE_FLAGS)
    raw = exact_rgb(y.astype(float), cb_full, cr_full, matrix, rng, clip=False)
    inside = ((raw >= 4) & (raw <= 251)).all(axis=-1)
    assert inside.mean() > 0.15
    assert np.abs(got - old)[inside].max() <= 1.8 + 0.5


@pytest.mark.parametrize(("matrix", "rng"), CASES, ids=IDS)
def test_encode_420_against_the_exact_conversion(matrix: str, rng: str) -> None:
    """``from_rgb``: Y' is the exact code rounded, Cb, Cr those of each 2x2 block's mean, within
    0.7 code on flat blocks (OpenCV's fixed-point coefficients: a few % of values round to the
    code next to the nearest) and 1.2 elsewhere (the per-pixel codes are rounded before the
    mean); every extreme colour; the frame is tagged with the matrix and range."""
    height, width = 242, 322  # even (the writer pads), chroma 161 wide: padded lines
    rgb = np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ends = np.array([0, 1, 128, 254, 255], np.uint8)
    corners = np.stack(np.meshgrid(ends, ends, ends, indexing="ij"), -1).reshape(-1, 3)
    rgb[:2, : 2 * len(corners)] = corners.repeat(2, axis=0)[None]  # flat 2x2 blocks of extreme colours
    rgb[100:140, 100:140] = (219, 38, 39)  # a flat patch
    info = ColourInfo(matrix=matrix, range=rng)  # type: ignore[arg-type]
    frame = colour.from_rgb(rgb, info)
    assert (frame.format.name, frame.width, frame.height) == ("yuv420p", width, height)
    assert frame.color_range == (2 if rng == "full" else 1)
    y, cb, cr = (p.astype(np.float64) for p in planes_of(frame))
    ey, ecb, ecr = exact_ycbcr(rgb.astype(np.float64), matrix, rng)
    luma_error = np.abs(y - np.clip(ey, 0, 255))
    assert luma_error.max() <= 0.7 and (luma_error > 0.5 + EPS).mean() < 0.1
    mean = lambda c: c.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))  # noqa: E731
    blocks = rgb.reshape(height // 2, 2, width // 2, 2, 3)
    flat = (blocks == blocks[:, :1, :, :1]).all(axis=(1, 3, 4))
    assert flat[:1, : len(corners)].all() and flat[50:70, 50:70].all()
    for got, want in ((cb, mean(ecb)), (cr, mean(ecr))):
        error = np.abs(got - np.clip(want, 0, 255))
        assert error[flat].max() <= 0.7
        assert error.max() <= 1.2


@pytest.mark.parametrize(("matrix", "rng"), CASES, ids=IDS)
def test_flat_colours_survive_the_round_trip(matrix: str, rng: str) -> None:
    """RGB -> yuv420p -> RGB through the two cheap paths moves flat colours by at most the 8-bit
    Y'CbCr rounding (limited range: 1.5 levels; full: 1)."""
    colours = np.array([[219, 38, 39], [38, 200, 60], [235, 190, 160], [30, 30, 30], [0, 0, 0], [255, 255, 255],
                        [128, 128, 128], [0, 255, 0]], np.uint8)
    rgb = np.repeat(np.repeat(colours[None], 16, axis=0), 16, axis=1)  # (16, 128, 3): 16 px wide bars
    info = ColourInfo(matrix=matrix, range=rng)  # type: ignore[arg-type]
    back = colour.to_rgb(colour.from_rgb(rgb, info), info).astype(np.int16)
    inner = back.reshape(16, len(colours), 16, 3)[4:12, :, 4:12]
    error = np.abs(inner - colours[None, :, None].astype(np.int16))
    assert error.max() <= (1 if rng == "full" else 2)


def test_odd_sizes_and_other_formats_keep_the_swscale_path() -> None:
    """Odd sizes to yuv420p and other pixel formats still convert (swscale), tagged the same."""
    rgb = np.full((241, 321, 3), (219, 38, 39), np.uint8)
    frame = colour.from_rgb(rgb, ColourInfo())
    assert (frame.width, frame.height, frame.format.name) == (321, 241, "yuv420p")
    assert colour.from_rgb(rgb[:240, :320], ColourInfo(), pix_fmt="yuv444p").format.name == "yuv444p"
    back = colour.to_rgb(frame, ColourInfo())
    assert np.abs(back[8:-8, 8:-8].astype(int) - (219, 38, 39)).max() <= 2
    grey = av.VideoFrame.from_ndarray(np.full((16, 16), 126, np.uint8), format="gray")
    assert colour.to_rgb(grey, ColourInfo()).shape == (16, 16, 3)
    assert Interpolation.ACCURATE_RND in colour._DECODE_FLAGS
