"""Reading a video backwards for ping-pong, with and without jumping to keyframes.

    python bench/bench_pingpong.py [--seconds 120]

A clip of SECONDS at 25 fps, 320x240, H.264 with x264's default keyframe interval (250 frames),
is made in bench/results/ and read as the pipeline reads it when the audio is twice as long:
forwards once, then backwards in segments of 64 frames. Printed: the time with the timeline the
forward pass records (``lipsync.media._seek``: each segment decodes from the keyframe before it), and
without it (each segment decodes from the first frame: the cost grows with the square of the
length).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lipsync.media import _seek  # noqa: E402
from lipsync.engine.length import sequence_frames  # noqa: E402
from lipsync.media.video import VideoWriter, iter_frames  # noqa: E402


def make_clip(seconds: int) -> Path:
    path = ROOT / "bench" / "results" / f"pingpong_{seconds}s_320x240.mp4"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        base = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
        with VideoWriter(path, 25) as writer:
            for i in range(seconds * 25):
                writer.write(np.roll(base, i, axis=1))
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=120)
    args = ap.parse_args()
    clip = make_clip(args.seconds)
    n = args.seconds * 25

    def open_frames(skip: int, cap: int):  # noqa: ANN202 - the pipeline's FrameOpener
        return iter_frames(clip, skip_first_frames=skip, frame_load_cap=cap)

    times = {}
    for label, keep in (("jumping to keyframes", True), ("reading from the first frame", False)):
        _seek._CACHE.clear()
        save = _seek.Recorder.save
        if not keep:
            _seek.Recorder.save = lambda self: None  # type: ignore[method-assign]
        try:
            t0 = time.perf_counter()
            count = sum(1 for _ in sequence_frames(open_frames, 2 * n, "pingpong"))
            times[label] = time.perf_counter() - t0
        finally:
            _seek.Recorder.save = save  # type: ignore[method-assign]
        print(f"{label:30s}: {count} frames ({n} forwards, {count - n} backwards) in {times[label]:6.1f} s")
    print(f"speed-up: {times['reading from the first frame'] / times['jumping to keyframes']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
