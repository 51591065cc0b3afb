"""Command line: ``python -m lipsync VIDEO AUDIO -o OUT.mp4`` and subcommands.

argparse cannot mix subcommands with the VIDEO AUDIO positionals, so the first word decides:
``convert`` (a checkpoint to .safetensors), ``batch`` (many jobs), anything else is the main job.
Exit status 0 only when the output was written; otherwise one line on stderr and 1 (2 for bad
usage, 130 when interrupted).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..errors import LipSyncError
from ..models.folders import CHECKPOINT_NAMES, find_checkpoint, models_dirs  # noqa: F401 (re-exported)
from ..types import (
    Blend,
    Box,
    ColorMatch,
    CompositeMode,
    DetectorName,
    FaceChoice,
    LengthPolicy,
    MissingFacePolicy,
    Smoothing,
    choices,
)

if TYPE_CHECKING:
    from ..engine.lipsync import LipSyncResult

__all__ = ["find_checkpoint", "main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lipsync",
        description="Re-sync the mouth in VIDEO to AUDIO with Wav2Lip. Other commands: "
        "'python -m lipsync convert CKPT' (to .safetensors), 'python -m lipsync download' (fetch the weights).",
    )
    p.add_argument("video", help="video file (mp4, mov, mkv, webm, ...) or a still image (png, jpg, webp)")
    p.add_argument("audio", help="audio file (wav, mp3, flac, m4a, ogg, opus, or a video's audio track)")
    p.add_argument("-o", "--output", required=True, help="output file: .mp4 (H.264 + AAC), or .mkv with --lossless")
    p.add_argument("--checkpoint", help="Wav2Lip weights (.pth, .safetensors, .onnx); default: models/wav2lip/")
    p.add_argument("--box", nargs=4, type=int, metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"), help="fixed face box in pixels; skips detection (as the original)")
    p.add_argument("--reference", action="store_true", help="behave exactly like the original inference.py (hard box paste, loop, drops the audio's last frames)")
    p.add_argument("--mode", choices=choices(CompositeMode), default="mouth", help="mouth: only the lower face changes (default); reference: paste the whole box")
    p.add_argument("--batch-size", type=int, default=8, help="faces per model call (default 8, the fastest on CPU)")
    p.add_argument("--detector", choices=choices(DetectorName), default="auto", help="face detector (default: the best available)")
    p.add_argument("--pads", nargs=4, type=int, default=(0, 10, 0, 0), metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"), help="grow the detected box by these pixels (default 0 10 0 0)")
    p.add_argument("--face", choices=choices(FaceChoice), default="largest", help="which face when there are several")
    p.add_argument("--face-index", type=int, default=0, help="with --face index: 0 = leftmost")
    p.add_argument("--missing-face", choices=choices(MissingFacePolicy), default="passthrough", help="frames without a face: keep them as they are (default), hold the last box, interpolate, or fail")
    p.add_argument("--detect-every", type=int, default=1, help="run the detector on every k-th frame and interpolate between (faster)")
    p.add_argument("--smoothing", choices=choices(Smoothing), default="steady", help="face box smoothing: steady (no jitter, follows moves; default) or reference (the original's 5-frame mean)")
    p.add_argument("--color-match", choices=choices(ColorMatch), default="off", help="mouth mode: lab matches the generated region's colours to the original")
    p.add_argument("--blend", choices=choices(Blend), default="feather", help="mouth mode: feather (soft edge) or seamless (Poisson cloning + soft edge)")
    p.add_argument("--restore", metavar="MODEL", help="face restorer (GFPGAN/RestoreFormer .pth/.safetensors; CodeFormer needs spandrel-extra-arches, non-commercial) applied inside the mouth mask")
    p.add_argument("--restore-strength", type=float, default=1.0, help="0-1: how much of the restored face is used (default 1)")
    p.add_argument("--restore-fidelity", type=float, default=0.5, help="CodeFormer: 0 = most restored, 1 = closest to the input (default 0.5)")
    p.add_argument("--length-policy", choices=choices(LengthPolicy), default="auto", help="audio and video of different length: auto = trim if the audio is shorter, ping-pong if longer")
    p.add_argument("--audio-offset", type=float, default=0.0, metavar="MS", help="shift the sync in milliseconds (positive: the mouth moves later)")
    p.add_argument("--fps", type=float, help="frame rate for a still image (default 25) or to override the file's")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--fp16", action="store_true", help="half precision (GPU only)")
    p.add_argument("--lossless", action="store_true", help="FFV1 RGB in .mkv: bit-exact frames")
    p.add_argument("--models-dir", help="models folder: wav2lip/, facedetect/, insightface/ (default: $LIPSYNC_MODELS or ./models)")
    p.add_argument("--no-overlap", action="store_true", help="run every stage in one thread (for measurements)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


class _Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream, self.enabled, self.t0 = stream, enabled and stream.isatty(), time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        rate = done / max(time.perf_counter() - self.t0, 1e-6)
        width = 30
        filled = int(width * done / max(total, 1))
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} frames {rate:5.1f} fps")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def _run_job(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    from ..media.formats import OUTPUT_CONTAINERS as _CONTAINERS
    from ..models.wav2lip.generator import load_generator
    from ..engine.lipsync import LipSyncOptions, lipsync_video

    output = Path(args.output)
    if args.lossless and output.suffix.lower() != ".mkv":
        raise LipSyncError(f"--lossless writes FFV1 into Matroska: name the output .mkv, not {output.name}.")
    if output.suffix.lower() not in _CONTAINERS:  # before minutes of work, not after
        raise LipSyncError(f"Cannot write {output.name}: name the output .mp4 (or {', '.join(list(_CONTAINERS)[1:])}).")
    opts = LipSyncOptions(
        mode="reference" if args.reference else args.mode,
        reference=args.reference,
        batch_size=args.batch_size,
        box=Box(*args.box) if args.box else None,
        detector=args.detector,
        models_dir=args.models_dir,
        pads=tuple(args.pads),
        face_choice=args.face,
        face_index=args.face_index,
        missing_face=args.missing_face,
        detect_every=args.detect_every,
        smoothing="reference" if args.reference else args.smoothing,
        color_match=args.color_match,
        blend=args.blend,
        restore=args.restore,
        restore_strength=args.restore_strength,
        restore_fidelity=args.restore_fidelity,
        length_policy="loop" if args.reference else args.length_policy,
        audio_offset_ms=args.audio_offset,
        fps=args.fps,
        lossless=args.lossless,
        overlap=not args.no_overlap,
    ).validated()
    import torch

    generator = load_generator(find_checkpoint(args.checkpoint, args.models_dir), args.device, torch.float16 if args.fp16 else None)
    bar = _Progress(sys.stderr, not args.quiet)
    try:
        result = lipsync_video(args.video, args.audio, output, generator, opts, progress=bar)
    finally:
        bar.close()
    for warning in _warnings(result, args):
        print(f"warning: {warning}", file=sys.stderr)
    if not args.quiet:
        print(
            f"wrote {result.output} ({result.frames} frames at {float(result.fps):g} fps, "
            f"{result.duration:.2f} s; face in {result.frames_with_face}; detector: {result.detector}; "
            f"{result.seconds:.1f} s)",
            file=sys.stderr,
        )
    return 0


def _warnings(result: LipSyncResult, args: argparse.Namespace) -> list[str]:
    """What the user must know although the file was written (shown even with --quiet)."""
    return [w.replace("give a fixed face box", "give --box") for w in result.warnings]


def _run_convert(argv: Sequence[str]) -> int:
    from ..models.wav2lip.checkpoint import convert_to_safetensors

    p = argparse.ArgumentParser(prog="python -m lipsync convert", description="Convert a Wav2Lip .pth to .safetensors (weights only, ~145 MB).")
    p.add_argument("checkpoint")
    p.add_argument("-o", "--output", help="default: the same name with .safetensors")
    args = p.parse_args(argv)
    target = convert_to_safetensors(args.checkpoint, args.output)
    print(f"wrote {target}", file=sys.stderr)
    return 0


def _run_download(argv: Sequence[str]) -> int:
    from ..models.registry import LICENCE_NOTE, WEIGHTS
    from ..models.wav2lip.fetch import fetch_wav2lip

    p = argparse.ArgumentParser(prog="python -m lipsync download", description=f"Fetch published Wav2Lip weights into MODELS/wav2lip/. {LICENCE_NOTE}")
    p.add_argument("name", nargs="?", default="wav2lip_gan", choices=list(WEIGHTS), help="which weights (default wav2lip_gan)")
    p.add_argument("--models-dir", help="models folder (default: $LIPSYNC_MODELS or ./models)")
    p.add_argument("--url", help="another source for the file")
    args = p.parse_args(argv)
    target = fetch_wav2lip(args.name, args.models_dir or models_dirs()[0], url=args.url)
    print(f"ready: {target}. {LICENCE_NOTE}", file=sys.stderr)
    return 0


def _run_batch(argv: Sequence[str]) -> int:
    from .batch import run_batch_cli  # imported on use: the main job never pays for it

    return run_batch_cli(argv)


def _run_segment(argv: Sequence[str]) -> int:
    from ..engine.segment import run_segment_cli

    return run_segment_cli(argv)


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "convert": _run_convert,
    "download": _run_download,
    "batch": _run_batch,
    "segment": _run_segment,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = COMMANDS.get(argv[0]) if argv else None
    run = command or _run_job
    rest = argv[1:] if command else argv
    try:
        return run(rest)
    except LipSyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: no output was written", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, the traceback on request
        if os.environ.get("LIPSYNC_DEBUG"):
            raise
        print(f"error: {_unexpected(exc)}", file=sys.stderr)
        return 1


def _unexpected(exc: Exception) -> str:
    """One line for an error the library did not foresee (no output was written either way)."""
    text = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return (
            f"out of memory ({type(exc).__name__}: {text[:200]}); lower --batch-size, use a smaller "
            "or shorter video, or close other programs using the GPU. No output was written."
        )
    return (
        f"unexpected {type(exc).__name__}: {text[:300]}. No output was written. This is a bug: please "
        "report it with the command line (set LIPSYNC_DEBUG=1 to see the full traceback)."
    )
