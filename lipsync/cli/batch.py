"""The command line of batch production: ``python -m lipsync batch …`` (``run_batch_cli``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..engine.batch.items import (
    AUDIO_SUFFIXES,
    VIDEO_SUFFIXES,
    BatchItem,
    expand_sources,
    items_for_audios,
    items_for_videos,
    read_manifest,
    resolve_inside,
)

__all__ = ["run_batch_cli"]


def _parser() -> argparse.ArgumentParser:
    from ..types import CompositeMode, DetectorName, LengthPolicy, MissingFacePolicy, choices

    p = argparse.ArgumentParser(
        prog="python -m lipsync batch",
        description="Lip-sync many jobs with one model: one audio on many videos (--audio + --videos), one video with "
        "many audios (--video + --audios), or explicit pairs (--manifest). Each output goes into OUT_DIR with a report "
        "(report.json, report.csv) and OUT_DIR/<name>.zip; a failing item is reported and the rest go on. Running the "
        "same batch again skips the outputs that are already complete. Every path must lie inside --root.",
        epilog="Exit status: 0 when every item is done or skipped, 1 when an item failed (see the report), 2 for bad "
        "usage, 130 when interrupted.",
    )
    p.add_argument("--audio", help="the one voice for every video (with --videos)")
    p.add_argument("--videos", nargs="+", metavar="V", help="videos: files, folders (their videos) or quoted globs")
    p.add_argument("--video", help="the one video for every audio (with --audios)")
    p.add_argument("--audios", nargs="+", metavar="A", help="audios: files, folders (their audios) or quoted globs")
    p.add_argument("--manifest", help="CSV (header video,audio,output) or JSON list of pairs; paths relative to it")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for the outputs, report and zip")
    p.add_argument("--root", help="the folder every input must lie in (default: the manifest's folder, else the "
                   "current folder)")
    p.add_argument("--checkpoint", help="Wav2Lip weights (.pth, .safetensors, .onnx); default: models/wav2lip/")
    p.add_argument("--models-dir", help="models folder (default: $LIPSYNC_MODELS or ./models)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--mode", choices=choices(CompositeMode), default="mouth", help="mouth (default) or reference")
    p.add_argument("--detector", choices=choices(DetectorName), default="auto", help="face detector")
    p.add_argument("--missing-face", choices=choices(MissingFacePolicy), default="passthrough",
                   help="frames without a face (a video with no face at all fails its item)")
    p.add_argument("--box", nargs=4, type=int, metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"), help="fixed face box")
    p.add_argument("--length-policy", choices=choices(LengthPolicy), default="auto", help="audio and video lengths")
    p.add_argument("--batch-size", type=int, default=8, help="faces per model call (default 8)")
    p.add_argument("--lossless", action="store_true", help="FFV1 + FLAC .mkv outputs, bit-exact frames")
    p.add_argument("--no-zip", action="store_true", help="do not write the zip")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per item")
    return p


def _cli_items(args: argparse.Namespace, parser: argparse.ArgumentParser, suffix: str) -> list[BatchItem]:
    modes = [bool(args.audio or args.videos), bool(args.video or args.audios), bool(args.manifest)]
    if sum(modes) != 1:
        parser.error("give exactly one of: --audio with --videos, --video with --audios, or --manifest")
    if args.manifest:
        root = args.root or Path(args.manifest).resolve().parent
        return read_manifest(resolve_inside(root, args.manifest), root, suffix)
    root = args.root or os.getcwd()
    if modes[0]:
        if not (args.audio and args.videos):
            parser.error("--videos needs --audio (the one voice), and --audio needs --videos")
        videos = expand_sources(args.videos, root, VIDEO_SUFFIXES, "video")
        return items_for_videos(videos, resolve_inside(root, args.audio), suffix)
    if not (args.video and args.audios):
        parser.error("--audios needs --video (the one video), and --video needs --audios")
    audios = expand_sources(args.audios, root, AUDIO_SUFFIXES, "audio")
    return items_for_audios(resolve_inside(root, args.video), audios, suffix)


def run_batch_cli(argv: Sequence[str]) -> int:
    """``python -m lipsync batch …``: see ``_parser``."""
    from ..engine.batch.run import run_batch  # here: batch re-exports this module's run_batch_cli
    from . import find_checkpoint
    from ..models.wav2lip.generator import load_generator
    from ..engine.lipsync import LipSyncOptions
    from ..types import Box

    parser = _parser()
    args = parser.parse_args(argv)
    items = _cli_items(args, parser, ".mkv" if args.lossless else ".mp4")
    opts = LipSyncOptions.of(
        mode=args.mode, batch_size=args.batch_size, box=Box(*args.box) if args.box else None, detector=args.detector,
        models_dir=args.models_dir, missing_face=args.missing_face, length_policy=args.length_policy,
        lossless=args.lossless,
    ).resolved()
    generator = load_generator(find_checkpoint(args.checkpoint, args.models_dir), args.device)

    def say(index: int, count: int, item: BatchItem) -> None:
        if not args.quiet:
            print(f"item {index}/{count}: {item.title}", file=sys.stderr, flush=True)

    batch = run_batch(items, args.output, generator, opts, on_item_start=say, make_zip=not args.no_zip)
    for r in batch.items:
        if r.status == "failed":
            print(f"failed: item {r.item} ({r.video}, {r.audio}): {r.error}", file=sys.stderr)
    counts = ", ".join(f"{batch.count(s)} {s}" for s in ("done", "skipped", "failed"))
    where = f"; zip: {batch.zip_path}" if batch.zip_path else ""
    print(f"{counts} in {batch.seconds:.1f} s; report: {batch.report_json}{where}", file=sys.stderr)
    return 1 if batch.count("failed") else 0
