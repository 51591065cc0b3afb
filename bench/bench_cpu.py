"""ReSync against the original Wav2Lip ``inference.py`` on the CPU, in one run, so the ratios compare.

    python bench/bench_cpu.py --wav2lip /path/to/Wav2Lip-checkout [--seconds 10] [--long]

On the same 720p clip (the shared real-face clip, upscaled, ``bench_pipeline.make_video``) with the
same weights (a copy of the shared random checkpoint, so caches never land in the shared folder):

1. the original ``inference.py`` (laid out and patched by ``bench/wav2lip_original.py``; it needs the
   ``ffmpeg`` program) with a fixed face box (it cannot detect faces without S3FD's weights);
2. ReSync's CLI with the same box and with face detection (its default), in each precision
   (exact, fast, fastest; the int8 model is calibrated and cached before the timed runs);
3. per run: end-to-end frames/s of the whole process (start-up included), its CPU seconds per
   frame, peak RSS; the network alone per precision (batch 8, warm, on the clip's real crops and
   mel windows) with its PSNR against exact; CPU per stage of the default job (stage after stage);
4. with ``--long``: the default on 120 s as well, for the peak RSS's growth with length.

Targets (issue #13) are printed at the end: default with detection >= 25 frames/s and >= 2.5 x the
original with a fixed box; exact with detection >= 2 x the original; peak RSS <= 1.2 GB; 120 s
vs 10 s <= 1.3 x. Compare only figures of one run: other processes on the machine move them all.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import bench_pipeline  # noqa: E402
from bench_pipeline import RESULTS, SHARED, make_audio, make_video  # noqa: E402
from wav2lip_original import lay_out  # noqa: E402

from lipsync.options import ModelOptions, default_of  # noqa: E402

BOX = ("178", "534", "500", "764")
"""top, bottom, left, right of the face in ``make_video``'s clip (both programs take this order)."""
PRECISIONS = ("exact", "fast", "fastest")
NETWORKS = (("exact, torch", "exact", "torch"), ("exact", "exact", "openvino"), ("fast", "fast", "torch"),
            ("fastest", "fastest", "torch"))
"""The network alone: (label, precision, exact_runtime); the first, torch float32 (the reference's
numbers, the parity tests' runtime), is the baseline; ``exact`` is what the CLI runs (OpenVINO f32
where it is installed)."""
DEFAULT = default_of(ModelOptions, "precision")
FFMPEG_HELP = ("the original inference.py calls the ffmpeg program for its final mux: install it "
               "(Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg; Windows: winget install ffmpeg)")


def frames_in(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.frames or sum(1 for _ in container.decode(stream))


def _peak_rss(pid: int, done: threading.Event, peak: list[float]) -> None:
    """Poll the process's own high-water mark (VmHWM, MiB). Not ``ru_maxrss``: on Linux a child
    inherits its parent's high-water mark through fork + exec, and this process is large."""
    status = Path(f"/proc/{pid}/status")
    while not done.wait(0.05):
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak[0] = max(peak[0], int(line.split()[1]) / 1024.0)
        except OSError:
            return


def run_process(cmd: list[str], cwd: Path, out: Path) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak RSS MiB, frames written) of one process."""
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors)
        done, peak = threading.Event(), [0.0]
        watcher = threading.Thread(target=_peak_rss, args=(proc.pid, done, peak), daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        done.set()
        watcher.join()
        errors.seek(0)
        err = errors.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0 or not out.is_file():
        raise SystemExit(f"{' '.join(cmd[:3])} … failed:\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, peak[0] or usage.ru_maxrss / 1024.0, frames_in(out)


def original(checkout: Path, video: Path, audio: Path, ckpt: Path) -> tuple[float, float, float, int] | None:
    if shutil.which("ffmpeg") is None:
        print(f"original inference.py: skipped, {FFMPEG_HELP}")
        return None
    script = lay_out(checkout, RESULTS / "wav2lip_original")
    out = RESULTS / "original_out.mp4"
    cmd = [sys.executable, str(script), "--checkpoint_path", str(ckpt), "--face", str(video), "--audio", str(audio),
           "--outfile", str(out), "--box", *BOX]
    return run_process(cmd, script.parent, out)


def resync(video: Path, audio: Path, ckpt: Path, precision: str, box: bool, batch: int, tag: str) -> tuple[float, float, float, int]:
    out = RESULTS / f"resync_{tag}_{precision}_{'box' if box else 'detect'}.mp4"
    cmd = [sys.executable, "-m", "lipsync", str(video), str(audio), "-o", str(out), "--checkpoint", str(ckpt),
           "--precision", precision, "--batch-size", str(batch), "-q", *(("--box", *BOX) if box else ())]
    return run_process(cmd, BENCH.parent, out)


def clip_inputs(video: Path, audio: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(crops (n, 96, 96, 3) BGR at the fixed box, mel windows (n, 80, 16)) of the clip's first frames."""
    from itertools import islice

    from lipsync.media.audio import load_audio, to_model_rate
    from lipsync.media.video import iter_frames
    from lipsync.models.wav2lip.mel import mel_windows, melspectrogram
    from lipsync.models.wav2lip.preprocess import crop_faces
    from lipsync.types import Box

    frames = list(islice(iter_frames(video), n))
    top, bottom, left, right = (int(v) for v in BOX)
    crops = crop_faces(frames, [Box(top, bottom, left, right)] * len(frames))
    mel = mel_windows(melspectrogram(to_model_rate(load_audio(audio))), 25, len(frames))
    return crops, np.asarray(mel, dtype=np.float32)


def network_alone(ckpt: Path, crops: np.ndarray, mel: np.ndarray, batch: int) -> dict[str, tuple[float, float, float]]:
    """Per ``NETWORKS`` row: (frames/s of the network alone, warm, PSNR of its faces against
    torch's float32, frames/s when only the rows the mouth paste reads at the fixed box are
    made: ``rows.RowCut``). Also makes the caches (exact and fast: the converted model; fastest: the
    int8 model calibrated on the clip's faces), so the timed CLI runs load them as a second job would."""
    from lipsync.composite import first_face_row
    from lipsync.models.wav2lip.generator import OpenVinoGenerator, load_generator
    from lipsync.models.wav2lip.preprocess import model_inputs
    from lipsync.types import Box

    top, bottom, left, right = (int(v) for v in BOX)
    rows_from = first_face_row(Box(top, bottom, left, right), None, 96)
    faces = model_inputs(crops)
    batches = [(mel[i : i + batch], faces[i : i + batch]) for i in range(0, len(faces) - batch + 1, batch)]
    results: dict[str, tuple[float, float, float]] = {}
    exact_out = None
    for label, precision, runtime in NETWORKS:
        gen = load_generator(ckpt, "cpu", precision=precision, exact_runtime=runtime)  # type: ignore[arg-type]
        if isinstance(gen, OpenVinoGenerator) and not gen.ready:
            gen.calibrate(crops, mel, batch)
        if gen.note:
            print(f"  note ({label}): {gen.note}")
        gen.run_batches(batches[:2])  # warm-up
        t0 = time.perf_counter()
        out = np.concatenate(gen.run_batches(batches))
        fps = len(out) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        lower = gen.run_batches(batches, rows_from)
        fps_lower = sum(len(part) for part in lower) / (time.perf_counter() - t0)
        if exact_out is None:
            exact_out = out
        mse = float(np.mean((out.astype(np.float64) - exact_out) ** 2))
        results[label] = (fps, float("inf") if mse == 0 else 10 * np.log10(1 / mse), fps_lower)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wav2lip", type=Path, help="a Rudrabha/Wav2Lip checkout (git clone https://github.com/Rudrabha/Wav2Lip)")
    ap.add_argument("--seconds", type=int, default=10, help="length of the clip (default 10)")
    ap.add_argument("--long", action="store_true", help="also the default on 120 s, for the peak RSS's growth")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--checkpoint", type=Path, default=SHARED / "fixtures" / "wav2lip_reference" / "random_wav2lip.pth")
    args = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    ckpt = RESULTS / args.checkpoint.name  # a copy: the converted models are cached beside it
    if not ckpt.is_file() or ckpt.stat().st_size != args.checkpoint.stat().st_size:
        shutil.copy2(args.checkpoint, ckpt)
    video, audio = make_video(args.seconds), make_audio(args.seconds)
    crops, mel = clip_inputs(video, audio, 64)
    print(f"# {args.seconds} s, 1280x720, 25 fps; default precision: {DEFAULT}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")

    print("\nnetwork alone (batch %d, warm, the clip's crops; lower face: the rows the mouth paste reads):" % args.batch_size)
    alone = network_alone(ckpt, crops, mel, args.batch_size)
    for label, (fps, db, fps_lower) in alone.items():
        print(f"  {label:12s} {fps:6.1f} frames/s ({fps / alone['exact, torch'][0]:4.2f} x torch float32)   "
              f"PSNR vs torch float32 {db:6.1f} dB   lower face {fps_lower:6.1f} frames/s ({fps_lower / fps:4.2f} x)")

    rows: dict[str, tuple[float, float, float, int]] = {}
    if args.wav2lip is not None:
        got = original(args.wav2lip, video, audio, ckpt)
        if got is not None:
            rows["original inference.py, fixed box"] = got
    else:
        print("original inference.py: skipped (give --wav2lip CHECKOUT)")
    for precision in PRECISIONS:
        for box in (True, False):
            label = f"ReSync {precision}{' (default)' if precision == DEFAULT else ''}, {'fixed box' if box else 'detection'}"
            rows[label] = resync(video, audio, ckpt, precision, box, args.batch_size, f"{args.seconds}s")
    print(f"\nend to end (whole process, start-up included):")
    base = rows.get("original inference.py, fixed box")
    for label, (wall, cpu, rss, frames) in rows.items():
        fps = frames / wall
        ratio = f"{fps / (base[3] / base[0]):4.2f} x original" if base else ""
        print(f"  {label:42s} {frames:5d} frames {wall:6.1f} s = {fps:5.1f} frames/s {ratio:16s} "
              f"CPU {1000 * cpu / frames:5.1f} ms/frame, peak RSS {rss:7.1f} MiB")

    bench_costs(video, audio, ckpt, args.batch_size)

    checks = []
    default_detect = rows[f"ReSync {DEFAULT} (default), detection"]
    exact_detect = rows["ReSync exact, detection"] if DEFAULT != "exact" else default_detect
    fps_default = default_detect[3] / default_detect[0]
    checks.append((f"default with detection >= 25 frames/s ({fps_default:.1f})", fps_default >= 25))
    if base:
        base_fps = base[3] / base[0]
        checks.append((f"default with detection >= 2.5 x original ({fps_default / base_fps:.2f})", fps_default >= 2.5 * base_fps))
        exact_fps = exact_detect[3] / exact_detect[0]
        checks.append((f"exact with detection >= 2 x original ({exact_fps / base_fps:.2f})", exact_fps >= 2 * base_fps))
    worst_rss = max(r[2] for label, r in rows.items() if label.startswith("ReSync"))
    checks.append((f"peak RSS <= 1.2 GB ({worst_rss:.0f} MiB)", worst_rss * 2**20 <= 1.2e9))
    if args.long:
        long_row = resync(make_video(120), make_audio(120), ckpt, DEFAULT, False, args.batch_size, "120s")
        growth = long_row[2] / default_detect[2]
        print(f"  ReSync {DEFAULT}, detection, 120 s: {long_row[3] / long_row[0]:5.1f} frames/s, peak RSS {long_row[2]:7.1f} MiB")
        checks.append((f"peak RSS 120 s <= 1.3 x {args.seconds} s ({growth:.2f})", growth <= 1.3))
    print("\n# Targets (issue #13; meant for a quiet machine)")
    for label, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")
    return 0 if all(ok for _, ok in checks) else 1


def bench_costs(video: Path, audio: Path, ckpt: Path, batch: int) -> None:
    """CPU per stage of the default job (``bench_pipeline.stage_costs`` with the default precision)."""
    import lipsync.models.wav2lip.generator as generator

    plain = generator.load_generator
    generator.load_generator = lambda path, device="auto", dtype=None, precision=DEFAULT, **_: plain(  # type: ignore[assignment]
        path, device, dtype, precision, exact_runtime="openvino")  # as the command line loads it
    try:
        n, costs = bench_pipeline.stage_costs(video, audio, ckpt, batch)
    finally:
        generator.load_generator = plain  # type: ignore[assignment]
    total = sum(costs.values())
    print(f"\nCPU per stage, default ({DEFAULT}, detection), {n} frames, stage after stage:")
    for name, cpu in costs.items():
        print(f"  {name:44s} {cpu:6.2f} s  ({1000 * cpu / n:5.1f} ms/frame, {100 * cpu / total:4.1f} %)")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    print(f"  {'total':44s} {total:6.2f} s -> on {cores} cores at best {n / (total / cores):5.1f} frames/s")


if __name__ == "__main__":
    sys.exit(main())
