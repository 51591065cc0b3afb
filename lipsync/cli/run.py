"""The main job: ``python -m lipsync VIDEO AUDIO -o OUT [options]`` (every option group)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import LipSyncError
from ._model import load_model
from ._progress import Progress
from .options import COMMAND_GROUPS, group_from_args, option_parents, resolved_options

if TYPE_CHECKING:
    from ..engine.lipsync import LipSyncResult

__all__ = ["main", "parser"]

COMMAND = "run"


def parser() -> argparse.ArgumentParser:
    """The main job's parser: VIDEO AUDIO -o OUT, -q, and the flags of every option group."""
    p = argparse.ArgumentParser(
        prog="python -m lipsync",
        description="Re-sync the mouth in VIDEO to AUDIO with Wav2Lip (or MuseTalk 1.5: --model musetalk). Other commands: "
        "'python -m lipsync convert CKPT' (to .safetensors), 'python -m lipsync download' (fetch the weights), "
        "'python -m lipsync batch' (many jobs), 'python -m lipsync segment' (one time range). With --cluster the "
        "video is rendered in --segments frame ranges on a Ray cluster's workers and joined.",
        parents=option_parents(COMMAND),
    )
    p.add_argument("video", help="video file (mp4, mov, mkv, webm, ...) or a still image (png, jpg, webp)")
    p.add_argument("audio", help="audio file (wav, mp3, flac, m4a, ogg, opus, or a video's audio track)")
    p.add_argument("-o", "--output", required=True, help="output file: .mp4 (H.264 + AAC), or .mkv with --lossless")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also print one line saying what was seen in the inputs (size, pixel shape, colour, HDR, "
                   "where the sound starts, the chosen speaker)")
    return p


def _check_output(output: Path, lossless: bool) -> None:
    """Refuse an output name the writer cannot honour, before minutes of work, not after."""
    from ..media.formats import OUTPUT_CONTAINERS as _CONTAINERS

    if lossless and output.suffix.lower() != ".mkv":
        raise LipSyncError(f"--lossless writes FFV1 into Matroska: name the output .mkv, not {output.name}.")
    if output.suffix.lower() not in _CONTAINERS:
        raise LipSyncError(f"Cannot write {output.name}: name the output .mp4 (or {', '.join(list(_CONTAINERS)[1:])}).")


def main(argv: Sequence[str]) -> int:
    """Run one job; 0 when the output was written (errors propagate to the dispatcher)."""
    p = parser()
    args = p.parse_args(argv)
    output = Path(args.output)
    _check_output(output, args.lossless)
    opts = resolved_options(args, COMMAND_GROUPS[COMMAND], argv)
    cluster = group_from_args(args, "cluster")
    cluster.check()
    if cluster.segments and not cluster.cluster:
        p.error("--segments splits the video over a cluster's workers: give --cluster ADDRESS (or local) too")
    bar = Progress(sys.stderr, not args.quiet)
    if cluster.cluster:
        from ..cluster import lipsync_video_on_cluster, require_ray  # on use: Ray is an optional extra

        require_ray()
        generator = load_model(replace(opts.model, device="cpu", fp16=False, precision="exact"), "torch")  # the driver only ships the weights
        try:
            result = lipsync_video_on_cluster(args.video, args.audio, output, generator, opts, cluster, progress=bar)
        finally:
            bar.close()
    else:
        generator = load_model(opts.model, "torch" if opts.reference else "openvino")
        from ..engine.lipsync import lipsync_video  # on use: --help and usage errors stay fast

        try:
            result = lipsync_video(args.video, args.audio, output, generator, opts, progress=bar)
        finally:
            bar.close()
    if args.verbose:
        print(f"seen: {result.summary}", file=sys.stderr)
    for warning in _warnings(result):
        print(f"warning: {warning}", file=sys.stderr)
    if not args.quiet:
        print(
            f"wrote {result.output} ({result.frames} frames at {float(result.fps):g} fps, "
            f"{result.duration:.2f} s; face in {result.frames_with_face}; detector: {result.detector}; "
            f"{result.seconds:.1f} s)",
            file=sys.stderr,
        )
    return 0


def _warnings(result: LipSyncResult) -> list[str]:
    """What the user must know although the file was written (shown even with --quiet)."""
    return [w.replace("give a fixed face box", "give --box") for w in result.warnings]
