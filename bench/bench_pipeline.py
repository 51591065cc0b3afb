"""Throughput and memory of the engine, measured in one run so the figures compare.

    python bench/bench_pipeline.py [--quick] [--batch-size 8] [--checkpoint PATH]

Prints:
- the network's pure forward throughput (batch 8, warm, in-process) — the baseline;
- end-to-end throughput of the CLI (`python -m lipsync`, the whole process: start-up, decoding,
  face detection, compositing, encoding) on a 10 s and a 120 s 720p input, and on 10 s of video
  with 20 s of audio (ping-pong), each in a fresh process;
- each process's peak RSS (from wait4), and the output file size.
Targets checked at the end: end-to-end >= 0.8 x pure forward on the 10 s input; the 120 s
peak RSS within 1.3 x the 10 s one. Inputs are made from the shared real-face clip (upscaled to
1280x720) and cached in bench/results/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lipsync.audio import load_audio  # noqa: E402
from lipsync.video import VideoWriter, iter_frames  # noqa: E402

SHARED = Path(os.environ.get("LIPSYNC_SHARED", ROOT.parent / "shared"))
RESULTS = ROOT / "bench" / "results"


def make_video(seconds: int) -> Path:
    """1280x720 H.264 at 25 fps: the real-face clip centred, played forwards and back."""
    path = RESULTS / f"face_720p_{seconds}s.mp4"
    if path.exists():
        return path
    src = list(iter_frames(SHARED / "media" / "astronaut_closeup_5s_silent.mp4"))
    import cv2

    canvas = np.full((720, 1280, 3), 40, np.uint8)
    order = src + src[::-1]
    with VideoWriter(path, Fraction(25)) as writer:
        for i in range(seconds * 25):
            frame = canvas.copy()
            frame[:, 280:1000] = cv2.resize(order[i % len(order)], (720, 720))
            writer.write(frame)
    return path


def make_audio(seconds: int) -> Path:
    path = RESULTS / f"speech_{seconds}s.wav"
    if path.exists():
        return path
    speech = load_audio(SHARED / "media" / "speech_piper_16k_5s.wav")
    reps = int(np.ceil(seconds / speech.duration))
    samples = np.tile(speech.samples, reps)[:, : seconds * speech.sample_rate]
    import wave

    pcm = (np.clip(samples[0], -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(speech.sample_rate)
        w.writeframes(pcm.tobytes())
    return path


def pure_forward(checkpoint: Path, frames: int, batch_size: int) -> float:
    """Frames per second of the network alone (warm), on random inputs of the real shapes."""
    from lipsync.inference import load_generator

    gen = load_generator(checkpoint, "cpu")
    rng = np.random.default_rng(0)
    mel = rng.uniform(-4, 4, (batch_size, 80, 16)).astype(np.float32)
    faces = rng.uniform(0, 1, (batch_size, 6, 96, 96)).astype(np.float32)
    gen(mel, faces)  # warm-up
    t0 = time.perf_counter()
    done = 0
    while done < frames:
        gen(mel, faces)
        done += batch_size
    return done / (time.perf_counter() - t0)


def run_cli(video: Path, audio: Path, out: Path, checkpoint: Path, batch_size: int, *extra: str) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, frames written) of one `python -m lipsync` process."""
    cmd = [sys.executable, "-m", "lipsync", str(video), str(audio), "-o", str(out), "--checkpoint", str(checkpoint), "--batch-size", str(batch_size), "-q", *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"CLI failed: {err}")
    import av

    with av.open(str(out)) as c:
        frames = c.streams.video[0].frames
    return wall, usage.ru_maxrss / 1024.0, frames


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 s inputs only (skips the 120 s run)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--checkpoint", default=str(SHARED / "fixtures" / "wav2lip_reference" / "random_wav2lip.pth"))
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    ckpt = Path(args.checkpoint)
    cases = [("10 s video, 10 s audio", 10, 10, ())]
    if not args.quick:
        cases += [("120 s video, 120 s audio", 120, 120, ()), ("10 s video, 20 s audio (ping-pong)", 10, 20, ())]
    cases += [("10 s, one thread (--no-overlap)", 10, 10, ("--no-overlap",)), ("10 s, fixed box (no detection)", 10, 10, ("--box", "178", "534", "500", "764"))]
    inputs = [(name, make_video(v), make_audio(a), extra) for name, v, a, extra in cases]

    fwd = pure_forward(ckpt, 250, args.batch_size)
    print(f"pure forward (batch {args.batch_size}, warm): {fwd:6.1f} frames/s")
    rows = []
    for name, video, audio, extra in inputs:
        out = RESULTS / f"out_{video.stem}_{audio.stem}.mp4"
        wall, rss, frames = run_cli(video, audio, out, ckpt, args.batch_size, *extra)
        fps = frames / wall
        size = out.stat().st_size / 1e6
        rows.append((name, fps, rss))
        print(f"CLI end-to-end, {name}: {frames} frames in {wall:6.1f} s = {fps:5.1f} frames/s "
              f"({fps / fwd:4.2f} x forward), peak RSS {rss:7.1f} MiB, file {size:5.1f} MB "
              f"({size * 8 / (frames / 25):4.2f} Mbit/s)")
    ratio = rows[0][1] / fwd
    print(f"target end-to-end >= 0.8 x forward on 10 s: {ratio:.2f} -> {'ok' if ratio >= 0.8 else 'MISSED'}")
    if not args.quick:
        growth = rows[1][2] / rows[0][2]
        print(f"target peak RSS 120 s <= 1.3 x 10 s: {growth:.2f} -> {'ok' if growth <= 1.3 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
