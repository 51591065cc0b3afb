"""Colour figures: what the decoder makes of untagged, full-range and HDR (HLG, PQ) clips, before
(PyAV's default conversion, what the product did) and now (``lipsync.media.colour``).

    python bench/bench_colour.py

The clips are the tests' own (``tests/colour_clips.py``: lossless x264/x265, patches of known
colour; HDR patches of known light in cd/m², 10-bit BT.2020) written to bench/results/colour/.
Printed: for each SDR clip the largest error over the patches (levels of 255) against the colour
the clip was made from; for each HDR clip the R'G'B' of every patch, old and new, and the BT.709
signal of the same light (clipped to SDR white) for the patches whose luminance is below the tone
curve's knee. Also the decode cost per
frame at 720p (SDR) and of the tone mapping (HDR).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from colour_clips import (  # noqa: E402
    HDR_PATCHES, PATCHES, hdr_linear, patch_image, patch_means, tags_for, write_clip, write_hdr_clip,
)
from lipsync.media import colour  # noqa: E402
from lipsync.media.video import iter_frames, probe  # noqa: E402

OUT = ROOT / "bench" / "results" / "colour"
BT2020_TO_BT709 = np.linalg.inv(np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]]))


def old_decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def per_frame_ms(path: Path, repeat: int = 20) -> float:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    info = colour.describe(frame)
    start = time.perf_counter()
    for _ in range(repeat):
        colour.to_rgb(frame, info)
    return (time.perf_counter() - start) / repeat * 1000


def sdr() -> None:
    cases = {
        "untagged 1280x720 BT.709": dict(rgb=patch_image(1280, 720), matrix="bt709"),
        "untagged 720x576 BT.601": dict(rgb=patch_image(720, 576), matrix="bt601"),
        "full range (tagged pc) 640x360": dict(rgb=patch_image(640, 360), matrix="bt709", full=True,
                                               tags=tags_for("bt709", True)),
        "full range (yuvj420p) 1280x720": dict(rgb=patch_image(1280, 720), matrix="bt709", full=True, pix_fmt="yuvj420p"),
        "tagged BT.709 640x480": dict(rgb=patch_image(640, 480), matrix="bt709", tags=tags_for("bt709")),
    }
    print("SDR: largest patch error vs the colour the clip was made from (levels of 255)")
    print(f"  {'clip':34} {'old':>6} {'new':>6}")
    for k, (name, spec) in enumerate(cases.items()):
        path = write_clip(OUT / f"sdr{k}.mp4", spec.pop("rgb"), frames=1, **spec)
        truth = PATCHES * 255
        old = np.abs(patch_means(old_decode(path).astype(float), len(PATCHES)) - truth).max()
        new = np.abs(patch_means(next(iter_frames(path)).astype(float), len(PATCHES)) - truth).max()
        print(f"  {name:34} {old:6.1f} {new:6.1f}")
    path = OUT / "sdr0.mp4"
    print(f"  decode cost, 720p: {per_frame_ms(path):.1f} ms/frame")


def hdr() -> None:
    names = list(HDR_PATCHES)
    for kind in ("hlg", "pq"):
        path = write_hdr_clip(OUT / f"{kind}.mp4", kind, "libx265", 1280, 720)
        info = probe(path)
        old = patch_means(old_decode(path).astype(float), len(names))
        new = patch_means(next(iter_frames(path)).astype(float), len(names))
        print(f"\n{kind.upper()} ({info.colour.describe()}), HEVC Main10 1280x720: R'G'B' of each patch")
        print(f"  {'patch (cd/m²)':16} {'old (as SDR)':>18} {'tone-mapped':>18} {'BT.709 of same light':>22}")
        for k, name in enumerate(names):
            light = np.clip(BT2020_TO_BT709 @ hdr_linear(HDR_PATCHES[name]) / colour.HDR_REFERENCE_WHITE, 0, None)
            below_knee = light @ np.array([0.2126, 0.7152, 0.0722]) <= colour.TONE_KNEE
            ideal = colour.bt709_oetf(light) * 255 if below_knee else None
            fmt = lambda v: "{:5.0f} {:5.0f} {:5.0f}".format(*v)  # noqa: E731
            print(f"  {name:16} {fmt(old[k]):>18} {fmt(new[k]):>18} {fmt(ideal) if ideal is not None else '(above knee)':>22}")
        print(f"  tone mapping cost, 720p: {per_frame_ms(path, 5):.1f} ms/frame")


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    sdr()
    hdr()
