"""The same jobs through two checkouts in one run: did a change of the engine cost speed?

    .venv/bin/python bench/bench_engine_change.py --baseline-tree /path/to/old/checkout [--seconds 120]

Runs, for each checkout in turn (the baseline first), the main job (``python -m lipsync``, face
detection, H.264) and ``segment`` (re-voicing the middle third) on the same 720p clip made by
``bench_pipeline.make_video`` from the shared real-face clip, with the shared random checkpoint,
and prints wall time, frames/s and peak RSS of each, and the ratio new / baseline.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import RESULTS, ROOT, SHARED, make_audio, make_video  # noqa: E402

CHECKPOINT = SHARED / "fixtures" / "wav2lip_reference" / "random_wav2lip.pth"


def run(tree: Path, args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one CLI process of ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "lipsync", *args], cwd=RESULTS, env=env, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{tree}: {' '.join(args[:3])} failed: {proc.stderr.read().decode()[-400:] if proc.stderr else ''}")
    return wall, usage.ru_maxrss / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-tree", type=Path, required=True, help="the old checkout (e.g. a git worktree)")
    ap.add_argument("--seconds", type=int, default=120, help="length of the 720p clip and of the voice")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    video, audio = make_video(args.seconds), make_audio(args.seconds)
    frames = args.seconds * 25
    third = args.seconds / 3
    common = ["--checkpoint", str(CHECKPOINT), "--device", "cpu"]
    jobs = {
        "main job": [str(video), str(audio), "-o", "bench_change.mp4", "-q", *common],
        "segment": ["segment", str(video), str(audio), "--start", f"{third:.2f}", "--end", f"{2 * third:.2f}",
                    "-o", "bench_change_segment.mp4", *common],
    }
    trees = {"baseline": args.baseline_tree.resolve(), "this": ROOT}
    figures: dict[tuple[str, str], float] = {}
    for job, cli in jobs.items():
        for label, tree in trees.items():
            wall, rss = run(tree, cli)
            figures[(job, label)] = wall
            print(f"{job:9s} {label:8s} {args.seconds:4d} s 720p: {frames} frames in {wall:6.1f} s = "
                  f"{frames / wall:5.1f} frames/s, peak RSS {rss:7.1f} MiB", flush=True)
        ratio = figures[(job, "baseline")] / figures[(job, "this")]
        print(f"{job:9s} speed this / baseline: {ratio:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
