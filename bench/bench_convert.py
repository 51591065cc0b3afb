"""Cost and accuracy of the colour conversions around the pipeline, old (swscale's accurate paths)
and new (``lipsync.media.colour``'s 8-bit paths), on the 720p bench clip, in one run.

    python bench/bench_convert.py [--frames 48]

Printed per conversion: the median CPU time of one 1280x720 frame in this thread (one swscale
thread, as the product runs them: ``threads=1``; the old decode also with swscale's default
automatic threads, in CPU of the whole process), and its error against an exact float64
conversion of the same codes (decode: Y'CbCr -> R'G'B' with bilinear chroma at the position
H.264 declares; encode: R'G'B' -> Y' per pixel, Cb/Cr of each 2x2 block's mean): mean, 99.9th
percentile and largest, in levels (decode) or codes (encode).
"""

from __future__ import annotations

import argparse
import sys
import time
from itertools import islice
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lipsync.media import colour  # noqa: E402
from lipsync.types import ColourInfo  # noqa: E402

CLIP = ROOT / "bench" / "results" / "face_720p_10s.mp4"
KR, KB = 0.2126, 0.0722  # BT.709: the clip's matrix
BT709 = ColourInfo()


def planes(frame: av.VideoFrame) -> list[np.ndarray]:
    return [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].astype(np.float64)
            for p in frame.planes]


def upsample_left(c: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear chroma on the even luma columns, between two luma rows (H.264's default siting)."""
    xs = np.clip(np.arange(width) / 2.0, 0, c.shape[1] - 1)
    ys = np.clip((np.arange(height) + 0.5) / 2.0 - 0.5, 0, c.shape[0] - 1)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    x1, y1 = np.minimum(x0 + 1, c.shape[1] - 1), np.minimum(y0 + 1, c.shape[0] - 1)
    fx, fy = xs - x0, (ys - y0)[:, None]
    rows = c[:, x0] * (1 - fx) + c[:, x1] * fx
    return rows[y0] * (1 - fy) + rows[y1] * fy


def exact_decode(frame: av.VideoFrame) -> np.ndarray:
    y, cb, cr = planes(frame)
    cb, cr = (upsample_left(c, frame.height, frame.width) for c in (cb, cr))
    yn, pb, pr = (y - 16) / 219, (cb - 128) / 224, (cr - 128) / 224
    r, b = yn + 2 * (1 - KR) * pr, yn + 2 * (1 - KB) * pb
    g = (yn - KR * r - KB * b) / (1 - KR - KB)
    return np.clip(np.stack([r, g, b], -1) * 255, 0, 255)


def exact_encode(rgb: np.ndarray) -> list[np.ndarray]:
    x = rgb.astype(np.float64) / 255
    h, w = rgb.shape[:2]
    yn = x @ np.array([KR, 1 - KR - KB, KB])
    pb, pr = (x[..., 2] - yn) / (2 * (1 - KB)), (x[..., 0] - yn) / (2 * (1 - KR))
    mean = lambda c: c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))  # noqa: E731
    return [16 + 219 * yn, 128 + 224 * mean(pb), 128 + 224 * mean(pr)]


def timed(fn, items: list, process: bool = False) -> float:  # noqa: ANN001
    """Median ms of ``fn(item)``: thread CPU, or the whole process's CPU (threads of swscale)."""
    clock = time.process_time if process else time.thread_time
    fn(items[0])
    times = []
    for _ in range(3):
        for item in items:
            start = clock()
            fn(item)
            times.append(clock() - start)
    return 1000 * float(np.median(times))


def stats(errors: list[np.ndarray]) -> str:
    e = np.concatenate([x.ravel() for x in errors])
    return f"mean {e.mean():5.3f}  p99.9 {np.percentile(e, 99.9):5.2f}  max {e.max():5.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=48)
    args = ap.parse_args()
    if not CLIP.is_file():
        raise SystemExit(f"{CLIP} is missing: run bench/bench_pipeline.py --quick once to make it")
    with av.open(str(CLIP)) as container:
        frames = list(islice(container.decode(video=0), args.frames))
    old_flags = dict(format="rgb24", src_colorspace=1, src_color_range=1, interpolation=colour._DECODE_FLAGS)
    decoders = {
        "old: swscale accurate, threads auto (process CPU)": (lambda f: f.to_ndarray(**old_flags), True),
        "old: swscale accurate, 1 thread": (lambda f: f.to_ndarray(threads=1, **old_flags), False),
        "new: colour.to_rgb (chroma by swscale + OpenCV matrix)": (lambda f: colour.to_rgb(f, BT709), False),
    }
    sample = frames[:: max(1, len(frames) // 6)]
    exact = [exact_decode(f) for f in sample]
    print(f"decode, {frames[0].width}x{frames[0].height} {frames[0].format.name}, {len(frames)} frames of {CLIP.name}:")
    for name, (fn, process) in decoders.items():
        errors = [np.abs(fn(f).astype(np.float64) - e) for f, e in zip(sample, exact)]
        print(f"  {name:56s} {timed(fn, frames, process):5.2f} ms/frame   vs exact (levels): {stats(errors)}")

    rgbs = [colour.to_rgb(f, BT709) for f in frames]
    encoders = {
        "old: swscale area + accurate rounding, threads auto": (lambda r: av.VideoFrame.from_ndarray(r, format="rgb24").reformat(
            format="yuv420p", dst_colorspace=1, dst_color_range=1, interpolation=colour._ENCODE_FLAGS), True),
        "old: the same, 1 thread": (lambda r: av.VideoFrame.from_ndarray(r, format="rgb24").reformat(
            format="yuv420p", dst_colorspace=1, dst_color_range=1, interpolation=colour._ENCODE_FLAGS, threads=1), False),
        "new: colour.from_rgb (OpenCV)": (lambda r: colour.from_rgb(r, BT709), False),
    }
    exact_codes = [exact_encode(r) for r in rgbs[:: max(1, len(rgbs) // 6)]]
    print("encode, RGB -> yuv420p BT.709 limited:")
    for name, (fn, process) in encoders.items():
        errors = [np.abs(np.stack([p.ravel() for p in [planes(fn(r))[0]]]) - e[0].ravel())
                  for r, e in zip(rgbs[:: max(1, len(rgbs) // 6)], exact_codes)]
        chroma = [np.abs(np.concatenate([p.ravel() for p in planes(fn(r))[1:]]) - np.concatenate([c.ravel() for c in e[1:]]))
                  for r, e in zip(rgbs[:: max(1, len(rgbs) // 6)], exact_codes)]
        print(f"  {name:56s} {timed(fn, rgbs, process):5.2f} ms/frame   Y' {stats(errors)} | CbCr {stats(chroma)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
