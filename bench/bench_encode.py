"""What the H.264 encoder settings cost: CPU per frame, PSNR against the source, file size.

    python bench/bench_encode.py [VIDEO ...]   (default: the shared real-face clips, and the
                                                 720p benchmark input when bench_pipeline.py made it)

Each clip is decoded once and converted to yuv420p up front, so only libx264 is timed (process
CPU time, all its threads; wall time beside it). PSNR is over the Y, U and V planes of every
frame, decoded back from the file, against the frames that went in. The row marked "default" is
what ``VideoWriter`` uses (``lipsync.media._encode.DEFAULT_PRESET`` + ``DEFAULT_X264_PARAMS``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lipsync.media._encode import DEFAULT_CRF, DEFAULT_PRESET, DEFAULT_X264_PARAMS  # noqa: E402
from lipsync.media.video import iter_frames  # noqa: E402

SHARED = Path(os.environ.get("LIPSYNC_SHARED", ROOT.parent / "shared"))

SETTINGS = [
    ("veryfast", ""),
    (DEFAULT_PRESET, DEFAULT_X264_PARAMS),
    ("superfast", ""),
    ("ultrafast", ""),
    ("faster", ""),
]


def encode(frames: list[av.VideoFrame], path: Path, preset: str, params: str) -> tuple[float, float]:
    """(CPU seconds, wall seconds) to encode ``frames`` into ``path`` at crf DEFAULT_CRF."""
    options = {"crf": str(DEFAULT_CRF), "preset": preset}
    if params:
        options["x264-params"] = params
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        wall, cpu = time.perf_counter(), time.process_time()
        for i, frame in enumerate(frames):
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        return time.process_time() - cpu, time.perf_counter() - wall


def psnr(path: Path, planes: list[np.ndarray]) -> float:
    with av.open(str(path)) as container:
        back = [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]
    mse = np.mean([np.mean((a.astype(np.float64) - b) ** 2) for a, b in zip(back, planes)])
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def main(argv: list[str]) -> int:
    videos = [Path(a) for a in argv] or [
        SHARED / "media" / "astronaut_closeup_5s_silent.mp4",
        SHARED / "media" / "astronaut_full_5s_silent.mp4",
        *[p for p in [ROOT / "bench" / "results" / "face_720p_10s.mp4"] if p.exists()],
    ]
    for video in videos:
        rgb = list(iter_frames(video))
        frames = [av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p") for f in rgb]
        planes = [f.to_ndarray(format="yuv420p") for f in frames]
        print(f"{video.name}: {len(frames)} frames {frames[0].width}x{frames[0].height}, crf {DEFAULT_CRF}")
        with tempfile.TemporaryDirectory() as tmp:
            for preset, params in SETTINGS:
                out = Path(tmp) / "out.mp4"
                cpu, wall = encode(frames, out, preset, params)
                mark = "  <- default" if (preset, params) == (DEFAULT_PRESET, DEFAULT_X264_PARAMS) else ""
                print(
                    f"  {preset:9s} {params or '-':26s} {1000 * cpu / len(frames):5.1f} ms CPU/frame "
                    f"({1000 * wall / len(frames):5.1f} ms wall)  PSNR {psnr(out, planes):5.2f} dB  "
                    f"{out.stat().st_size / 1e6:5.2f} MB{mark}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
