"""Throughput and memory of the engine, measured in one run so the figures compare.

    python bench/bench_pipeline.py [--quick] [--batch-size 8] [--checkpoint PATH]

Prints:
- the network's pure forward throughput (batch 8, warm, in-process), one batch at a time and
  batches at once as the pipeline runs them on a CPU; the faster of the two is the baseline;
- end-to-end throughput of the CLI (`python -m lipsync`, the whole process: start-up, decoding,
  face detection, compositing, encoding) on a 10 s and a 120 s 720p input, and on 10 s of video
  with 20 s of audio (ping-pong), each in a fresh process;
- each process's peak RSS (from wait4), and the output file size;
- what each stage costs in CPU time on the 10 s input (run one after the other in this process,
  start-up in a fresh one), and from that the best end-to-end ratio this machine could give if
  every core were busy all the time (total CPU / cores): the ceiling for the target below.
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

from lipsync.media.audio import load_audio  # noqa: E402
from lipsync.media.video import VideoWriter, iter_frames  # noqa: E402

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


def pure_forward(checkpoint: Path, frames: int, batch_size: int) -> tuple[float, float]:
    """Frames per second of the network alone (warm), on random inputs of the real shapes:
    (one batch at a time with all of torch's threads, batches at once as the pipeline runs them
    on a CPU — ``TorchGenerator.run_batches``)."""
    from lipsync.models.wav2lip.generator import load_generator

    gen = load_generator(checkpoint, "cpu")
    rng = np.random.default_rng(0)
    mel = rng.uniform(-4, 4, (batch_size, 80, 16)).astype(np.float32)
    faces = rng.uniform(0, 1, (batch_size, 6, 96, 96)).astype(np.float32)
    batches = [(mel, faces)] * max(1, frames // batch_size)
    gen(mel, faces)  # warm-up
    t0 = time.perf_counter()
    for m, f in batches:
        gen(m, f)
    one_at_a_time = len(batches) * batch_size / (time.perf_counter() - t0)
    gen.run_batches(batches[:4])  # warm-up of the workers
    t0 = time.perf_counter()
    gen.run_batches(batches)
    at_once = len(batches) * batch_size / (time.perf_counter() - t0)
    return one_at_a_time, at_once


def _cpu() -> float:
    return time.process_time()  # all threads of this process: torch's, x264's, the detector's


def stage_costs(video: Path, audio: Path, checkpoint: Path, batch_size: int) -> tuple[int, dict[str, float]]:
    """(frames, CPU seconds per stage) of the default job on ``video``, stage after stage."""
    # What a CPU job imports: torch only where the job needs it (no cached OpenVINO model, a GPU, restore).
    code = ("import sys, lipsync.cli, lipsync.cli._model, lipsync.engine.lipsync, lipsync.models.wav2lip.generator, "
            "lipsync.faces, lipsync.media.video\n"
            "from lipsync.models.wav2lip import cpu\n"
            "if cpu.openvino_available()[0]: import openvino\n"
            "else: import torch")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    _, _, usage = os.wait4(proc.pid, 0)
    costs = {"start-up: python + imports (fresh process)": usage.ru_utime + usage.ru_stime}

    from lipsync.models.wav2lip.mel import mel_windows
    from lipsync.composite import first_face_row, paste_mouth
    from lipsync.models.wav2lip.preprocess import crop_faces, predict
    from lipsync.models.wav2lip.generator import load_generator
    from lipsync.engine.lipsync import LipSyncOptions, prepare_audio
    from lipsync.engine.stages import track_faces
    from lipsync.faces import create_detector, openmp_threads
    from lipsync.media.video import probe

    def timed(name: str, fn):  # noqa: ANN001, ANN202 - a bench helper
        start = _cpu()
        value = fn()
        costs[name] = _cpu() - start
        return value

    opts = LipSyncOptions.of(batch_size=batch_size)
    gen = timed("start-up: read the checkpoint", lambda: load_generator(checkpoint, "cpu"))
    info, prepared = timed("audio: load + mel", lambda: (probe(video), prepare_audio(audio, gen)))
    frames = timed("decode (PyAV, to RGB)", lambda: list(iter_frames(video)))
    detector = create_detector(opts.faces.detector)
    with openmp_threads(detector, 1):  # as the pipeline runs it beside a network on the CPU
        tracked = timed(f"detect ({detector.name}) + track", lambda: list(track_faces(iter(frames), (info.height, info.width), opts.faces, detector)))
    boxes = [face.box for _, face in tracked]
    mel = np.asarray(mel_windows(prepared.features.mel, info.fps, len(frames)), dtype=np.float32)

    def network() -> np.ndarray:  # as the pipeline asks: per batch, only the rows the mouth paste reads
        parts = []
        for i in range(0, len(frames), batch_size):
            faces = [face for _, face in tracked[i : i + batch_size]]
            rows_from = min(first_face_row(face.box, face.landmarks, 96) for face in faces)
            parts.append(predict(gen, mel[i : i + batch_size], crop_faces(frames[i : i + batch_size], boxes[i : i + batch_size]),
                                 batch_size, rows_from))
        return np.concatenate(parts)

    pred = timed("network (crop + Wav2Lip)", network)
    # The pipeline pastes into one buffer it reuses; here every pasted frame is kept for the
    # encoder, in buffers touched beforehand (a fresh page's first write is not the paste's cost).
    buffers = [np.ones_like(frame) for frame in frames]

    def composite() -> list[np.ndarray]:
        for (frame, face), g, buffer in zip(tracked, pred, buffers):
            paste_mouth(frame, g, face.box, face.landmarks, out=buffer)
        return buffers

    pasted = timed("composite (mouth mask)", composite)

    def encode() -> None:
        with VideoWriter(RESULTS / "stage_costs.mp4", info.fps, audio=prepared.source) as writer:
            for frame in pasted:
                writer.write(frame)

    timed("encode (RGB -> yuv420p, x264, AAC)", encode)
    return len(frames), costs


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

    one, workers = pure_forward(ckpt, 256, args.batch_size)
    fwd = max(one, workers)  # the baseline is the faster of the two
    print(f"pure forward (batch {args.batch_size}, warm): {one:6.1f} frames/s one batch at a time (all threads), "
          f"{workers:6.1f} frames/s batches at once (workers); baseline {fwd:6.1f}")
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
    n, costs = stage_costs(inputs[0][1], inputs[0][2], ckpt, args.batch_size)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    total = sum(costs.values())
    print(f"\nCPU time per stage, 10 s input ({n} frames), stage after stage:")
    for name, cpu in costs.items():
        print(f"  {name:44s} {cpu:6.2f} s  ({1000 * cpu / n:5.1f} ms/frame, {100 * cpu / total:4.1f} %)")
    best = n / (total / cores)
    print(f"  {'total':44s} {total:6.2f} s -> on {cores} cores at best {total / cores:5.1f} s = {best:5.1f} frames/s "
          f"({best / fwd:4.2f} x forward): the ceiling of the ratio below on this machine")
    ratio = rows[0][1] / fwd
    print(f"\ntarget end-to-end >= 0.8 x forward on 10 s: {ratio:.2f} -> {'ok' if ratio >= 0.8 else 'MISSED'}")
    if not args.quick:
        growth = rows[1][2] / rows[0][2]
        print(f"target peak RSS 120 s <= 1.3 x 10 s: {growth:.2f} -> {'ok' if growth <= 1.3 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
