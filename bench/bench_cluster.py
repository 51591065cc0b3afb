"""Batch items on a Ray cluster: items/min with W workers against one process, and what Ray costs.

    .venv/bin/python bench/bench_cluster.py                                  # here: W = 1, 2 on the CPU
    .venv/bin/python bench/bench_cluster.py --workers 1 2 4 --gpus-per-worker 0.25 --device cuda \\
        --items 16 --seconds 10 --size 720                                   # one large GPU, 4 workers on it
    .venv/bin/python bench/bench_cluster.py --cluster auto ...               # a running cluster

Makes ``--items`` clips (``--size``² noise, ``--seconds`` long, fixed face box, the shared random
checkpoint), runs them once in this process (``run_batch``: the baseline, measured in the same
run) and then, for each W, through W cluster workers (the batch's own worker code,
``Worker.run_item``, via ``lipsync.cluster.pool``). Prints:

- items/min: one process, and W workers (wall time from the first item handed out to the last
  done; the workers' start-up is shown apart);
- Ray's start-up (``ray.init`` of a local cluster): wall and CPU seconds (driver + Ray's daemons);
- a worker's start-up: wall for all W, CPU seconds per worker (Python, torch, the weights from the
  object store);
- Ray's per-item overhead in CPU seconds: (CPU of the driver and Ray's daemons during the items
  + the workers' CPU for the items - the one process's CPU for the same items) / items.

On a machine with few cores the speed-up is bounded by the cores: the one process already uses
them all (network threads, decode and encode threads), so W workers share the same cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CHECKPOINT = ROOT.parent / "shared" / "fixtures" / "wav2lip_reference" / "random_wav2lip.pth"


def make_items(folder: Path, count: int, seconds: float, size: int) -> list:
    from lipsync.engine.batch.run import items_for_videos
    from lipsync.media.video import VideoWriter
    from lipsync.types import Waveform

    rng = np.random.default_rng(0)
    videos = []
    for k in range(count):
        base = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
        path = folder / f"clip_{k}.mp4"
        with VideoWriter(path, Fraction(25)) as writer:
            for i in range(int(seconds * 25)):
                writer.write(np.roll(base, i, axis=1))
        videos.append(path)
    t = np.arange(int(seconds * 16000)) / 16000
    voice = Waveform((0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)))[None].astype(np.float32),
                     16000, source="voice")
    return items_for_videos(videos, voice)


def daemons_cpu() -> float:
    """CPU seconds of this process's descendants that are Ray's own (not its workers)."""
    import psutil

    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.name().startswith("ray::") or "default_worker" in " ".join(proc.cmdline()):
                continue
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to measure (W)")
    ap.add_argument("--items", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each item")
    ap.add_argument("--size", type=int, default=256, help="frame width and height")
    ap.add_argument("--cluster", default="local", help="local[:N] (started here) or a running cluster's address")
    ap.add_argument("--gpus-per-worker", type=float, default=0.0)
    ap.add_argument("--cpus-per-worker", type=float, default=1.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    from lipsync.cluster._ray import connect, library_fingerprint
    from lipsync.cluster.pool import Pool, Task
    from lipsync.cluster.weights import pack_generator
    from lipsync.cluster.worker import WorkerSetup
    from lipsync.engine.batch.run import run_batch, staged_path
    from lipsync.models.wav2lip.generator import load_generator
    from lipsync.options import ClusterOptions, LipSyncOptions
    from lipsync.types import Box

    size = args.size
    opts = LipSyncOptions.of(box=Box(size // 6, size - size // 8, size // 5, size - size // 5), device=args.device)
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    items = make_items(work, args.items, args.seconds, size)
    frames = sum(int(args.seconds * 25) for _ in items)
    print(f"{args.items} items of {args.seconds:g} s ({frames} frames of {size}x{size} in all), fixed box, "
          f"device {args.device}; this machine has {os.cpu_count()} CPU cores")

    generator = load_generator(args.checkpoint, args.device)
    c0, t0 = time.process_time(), time.perf_counter()
    run_batch(items, work / "local", generator, opts, make_zip=False)
    local_wall, local_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"one process:   {args.items / local_wall * 60:6.2f} items/min  ({local_wall:.1f} s, {local_cpu:.1f} CPU-s)")

    payload = pack_generator(load_generator(args.checkpoint, "cpu"))
    voice = items[0].audio
    c0, t0, d0 = time.process_time(), time.perf_counter(), daemons_cpu()
    base = ClusterOptions(cluster=args.cluster, gpus_per_worker=args.gpus_per_worker,
                          cpus_per_worker=args.cpus_per_worker)
    with connect(base) as ray:
        init_wall, init_cpu = time.perf_counter() - t0, time.process_time() - c0 + daemons_cpu() - d0
        print(f"Ray start-up:  {init_wall:.1f} s wall, {init_cpu:.1f} CPU-s (driver + Ray's daemons)")
        voice_ref = ray.put(voice)
        for count in args.workers:
            out = work / f"w{count}"
            out.mkdir()
            cluster = ClusterOptions(cluster=args.cluster, workers=count, gpus_per_worker=args.gpus_per_worker,
                                     cpus_per_worker=args.cpus_per_worker)
            setup = WorkerSetup(opts, library_fingerprint(), (str(work),), str(out))
            t0 = time.perf_counter()
            with Pool(ray, cluster, setup, payload, count) as pool:
                start_wall = time.perf_counter() - t0
                start_cpu = sum(i["startup_cpu"] for i in pool.info)
                outcomes = []
                tasks = [Task(key=str(k), method="run_item",
                              args=lambda n, k=k, it=it, out=out: (str(k), it, voice_ref, "voice",
                                                                   str(staged_path(out / it.output_name, n)), None))
                         for k, it in enumerate(items)]
                c0, d0, t0 = time.process_time(), daemons_cpu(), time.perf_counter()
                pool.run(tasks, lambda t, o, done=outcomes: done.append(o))
                wall = time.perf_counter() - t0
                ray_cpu = time.process_time() - c0 + daemons_cpu() - d0
            failed = [o.error for o in outcomes if o.error]
            if failed:
                raise SystemExit(f"an item failed: {failed[0]}")
            item_cpu = sum(o.cpu_seconds for o in outcomes)
            overhead = (ray_cpu + item_cpu - local_cpu) / args.items
            print(f"W = {count}:  {args.items / wall * 60:6.2f} items/min  ({wall:.1f} s; x{local_wall / wall:.2f} of one "
                  f"process) | workers' start-up {start_wall:.1f} s wall, {start_cpu / count:.1f} CPU-s each | "
                  f"per item: workers {item_cpu / args.items:.2f} CPU-s vs one process {local_cpu / args.items:.2f}, "
                  f"driver + Ray daemons {ray_cpu / args.items:.2f} CPU-s -> Ray overhead {overhead:+.2f} CPU-s/item")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
