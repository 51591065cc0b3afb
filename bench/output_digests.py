"""Digests of the frames the product writes, to show a change kept the output bit for bit.

    .venv/bin/python bench/output_digests.py                      # this checkout
    .venv/bin/python bench/output_digests.py --tree /path/to/old  # another checkout, e.g. a git worktree

Runs the command line of the checkout (``python -m lipsync`` with that checkout first on the
path) on the shared fixture and media, lossless (FFV1 in .mkv), and prints the sha256 of the
decoded frames of each output:

(a) ``--reference --lossless`` on the Wav2Lip fixture with its box;
(b) the default mode with face detection on both shared media clips;
(c) ``segment`` re-voicing 1.0–2.5 s of the close-up clip;
(d) a batch of two (one voice, both clips).

The random reference checkpoint is used throughout; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIPSYNC_SHARED", ROOT.parent / "shared"))
FIXTURE = SHARED / "fixtures" / "wav2lip_reference"
MEDIA = SHARED / "media"
CHECKPOINT = FIXTURE / "random_wav2lip.pth"


def frames_digest(path: Path) -> tuple[str, int]:
    """sha256 over the decoded RGB frames of ``path`` and how many there are."""
    digest, count = hashlib.sha256(), 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            digest.update(frame.to_ndarray(format="rgb24").tobytes())
            count += 1
    return digest.hexdigest(), count


def run(tree: Path, args: list[str], cwd: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, "-m", "lipsync", *args]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} … failed ({done.returncode}): {done.stderr.strip()[-500:]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose command line runs (default: this one)")
    args = p.parse_args()
    tree = args.tree.resolve()
    common = ["--checkpoint", str(CHECKPOINT), "--device", "cpu"]
    closeup, full = MEDIA / "astronaut_closeup_5s_silent.mp4", MEDIA / "astronaut_full_5s_silent.mp4"
    espeak, piper = MEDIA / "speech_espeak_16k_5s.wav", MEDIA / "speech_piper_16k_5s.wav"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        jobs = {
            "a reference": ([str(FIXTURE / "face.mp4"), str(FIXTURE / "speech_3s.wav"), "-o", "a.mkv", "--reference",
                             "--lossless", "--box", "48", "232", "56", "200", "-q", *common], ["a.mkv"]),
            "b closeup": ([str(closeup), str(espeak), "-o", "b1.mkv", "--lossless", "-q", *common], ["b1.mkv"]),
            "b full": ([str(full), str(piper), "-o", "b2.mkv", "--lossless", "-q", *common], ["b2.mkv"]),
            "c segment": (["segment", str(closeup), str(piper), "--start", "1.0", "--end", "2.5", "-o", "c.mkv",
                           "--lossless", *common], ["c.mkv"]),
            "d batch": (["batch", "--audio", str(espeak), "--videos", str(closeup), str(full), "-o", "d",
                         "--root", str(SHARED), "--lossless", "--no-zip", "-q", *common],
                        ["d/astronaut_closeup_5s_silent.mkv", "d/astronaut_full_5s_silent.mkv"]),
        }
        print(f"tree: {tree}")
        for name, (cli, outputs) in jobs.items():
            run(tree, cli, work)
            for out in outputs:
                digest, count = frames_digest(work / out)
                print(f"{name:12s} {Path(out).name:34s} {count:4d} frames  sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
