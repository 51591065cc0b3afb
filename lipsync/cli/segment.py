"""``python -m lipsync segment VIDEO AUDIO --start S --end E -o OUT``: re-voice one time range.

The video keeps its length and rate, so the source group (frame selection, fps, length policy)
does not apply; every other option group does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..engine.segment import DEFAULT_CROSSFADE_MS, DEFAULT_RAMP_FRAMES
from ._model import load_model
from ._progress import Progress
from .options import COMMAND_GROUPS, option_parents, resolved_options

__all__ = ["main", "parser"]

COMMAND = "segment"


def parser() -> argparse.ArgumentParser:
    """The segment parser: the range, its joins, and the flags of the groups that apply."""
    p = argparse.ArgumentParser(
        prog="python -m lipsync segment",
        description="Replace the speech of one time range of VIDEO with AUDIO and re-sync the mouth there; every "
        "frame and sample outside the range stays as it was (bit-exact frames with --lossless and an .mkv output).",
        parents=option_parents(COMMAND),
    )
    p.add_argument("video", help="the finished video")
    p.add_argument("audio", help="the new speech for the range (any format); it starts at --start")
    p.add_argument("--start", type=float, required=True, help="start of the range in seconds")
    p.add_argument("--end", type=float, required=True, help="end of the range in seconds (exclusive)")
    p.add_argument("-o", "--output", required=True, help="output .mp4 (H.264 + AAC), or .mkv with --lossless")
    p.add_argument("--crossfade-ms", type=float, default=DEFAULT_CROSSFADE_MS,
                   help="audio crossfade at each join in milliseconds (default: %(default)g)")
    p.add_argument("--ramp-frames", type=int, default=DEFAULT_RAMP_FRAMES,
                   help="frames over which the new mouth fades in and out at the joins (default: %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no closing line")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also print one line saying what was seen in the inputs (size, pixel shape, colour, HDR, "
                   "where the sound starts, the chosen speaker)")
    return p


def main(argv: Sequence[str]) -> int:
    """Re-voice the range; 0 when the output was written."""
    from ..engine.segment import revoice_segment

    args = parser().parse_args(argv)
    opts = resolved_options(args, COMMAND_GROUPS[COMMAND], argv)
    generator = load_model(opts.model, "torch" if opts.reference else "openvino")
    bar = Progress(sys.stderr, not args.quiet)
    try:
        result = revoice_segment(
            args.video, args.audio, args.output, generator, opts, start=args.start, end=args.end,
            crossfade_ms=args.crossfade_ms, ramp_frames=args.ramp_frames, progress=bar,
        )
    finally:
        bar.close()
    if args.verbose:
        print(f"seen: {result.summary}", file=sys.stderr)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not args.quiet:
        print(f"wrote {result.output}: frames {result.first_frame}–{result.end_frame - 1} of {result.frames} re-synced "
              f"in {result.seconds:.1f} s", file=sys.stderr)
    return 0
