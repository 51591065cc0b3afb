"""``python -m lipsync batch …``: many jobs with one model (every option group of the main job)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
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
from ._model import load_model
from ._progress import Progress
from .options import COMMAND_GROUPS, group_from_args, option_parents, resolved_options

__all__ = ["main", "parser"]

COMMAND = "batch"


def parser() -> argparse.ArgumentParser:
    """The batch parser: what to pair, where the outputs go, and the flags of every option group."""
    p = argparse.ArgumentParser(
        prog="python -m lipsync batch",
        description="Lip-sync many jobs with one model: one audio on many videos (--audio + --videos), one video with "
        "many audios (--video + --audios), or explicit pairs (--manifest). Each output goes into OUT_DIR with a report "
        "(report.json, report.csv) and OUT_DIR/<name>.zip; a failing item is reported and the rest go on. Running the "
        "same batch again skips the outputs that are already complete. Every path must lie inside --root. Every "
        "item gets the same options (a video with no face at all fails its item). With --cluster the items run on a Ray "
        "cluster's workers (every path on storage all nodes mount at the same path).",
        epilog="Exit status: 0 when every item is done or skipped, 1 when an item failed (see the report), 2 for bad "
        "usage, 130 when interrupted.",
        parents=option_parents(COMMAND),
    )
    p.add_argument("--audio", help="the one voice for every video (with --videos)")
    p.add_argument("--videos", nargs="+", metavar="V", help="videos: files, folders (their videos) or quoted globs")
    p.add_argument("--video", help="the one video for every audio (with --audios)")
    p.add_argument("--audios", nargs="+", metavar="A", help="audios: files, folders (their audios) or quoted globs")
    p.add_argument("--manifest", help="CSV (header video,audio,output) or JSON list of pairs; paths relative to it")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for the outputs, report and zip")
    p.add_argument("--root", help="the folder every input must lie in (default: the manifest's folder, else the "
                   "current folder)")
    p.add_argument("--no-zip", action="store_true", help="do not write the zip")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per item")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also print, per item, one line saying what was seen in its inputs (the report always has it)")
    return p


def _items(args: argparse.Namespace, p: argparse.ArgumentParser, suffix: str) -> list[BatchItem]:
    """The items the arguments name (usage errors exit 2 through ``p.error``)."""
    modes = [bool(args.audio or args.videos), bool(args.video or args.audios), bool(args.manifest)]
    if sum(modes) != 1:
        p.error("give exactly one of: --audio with --videos, --video with --audios, or --manifest")
    if args.manifest:
        root = args.root or Path(args.manifest).resolve().parent
        return read_manifest(resolve_inside(root, args.manifest), root, suffix)
    root = args.root or os.getcwd()
    if modes[0]:
        if not (args.audio and args.videos):
            p.error("--videos needs --audio (the one voice), and --audio needs --videos")
        videos = expand_sources(args.videos, root, VIDEO_SUFFIXES, "video")
        return items_for_videos(videos, resolve_inside(root, args.audio), suffix)
    if not (args.video and args.audios):
        p.error("--audios needs --video (the one video), and --video needs --audios")
    audios = expand_sources(args.audios, root, AUDIO_SUFFIXES, "audio")
    return items_for_audios(resolve_inside(root, args.video), audios, suffix)


def main(argv: Sequence[str]) -> int:
    """Run the batch; 0 when every item is done or skipped, 1 when one failed."""
    from ..engine.batch.run import run_batch

    p = parser()
    args = p.parse_args(argv)
    cluster = group_from_args(args, "cluster")
    if cluster.segments:
        p.error("--segments splits one long video; a batch runs whole items on the workers: leave it out")
    items = _items(args, p, ".mkv" if args.lossless else ".mp4")
    opts = resolved_options(args, COMMAND_GROUPS[COMMAND], argv)

    def say(index: int, count: int, item: BatchItem) -> None:
        if not args.quiet:
            print(f"item {index}/{count}: {item.title}", file=sys.stderr, flush=True)

    if cluster.cluster:
        from ..cluster import require_ray, run_batch_on_cluster  # on use: Ray is an optional extra

        cluster.check()
        require_ray()
        generator = load_model(replace(opts.model, device="cpu", fp16=False, precision="exact"), "torch")  # the driver only ships the weights
        bar = Progress(sys.stderr, not args.quiet)
        try:
            batch = run_batch_on_cluster(items, args.output, generator, opts, cluster, progress=bar,
                                         on_item_start=None if bar.enabled else say, make_zip=not args.no_zip)
        finally:
            bar.close()
    else:
        generator = load_model(opts.model, "torch" if opts.reference else "openvino")
        batch = run_batch(items, args.output, generator, opts, on_item_start=say, make_zip=not args.no_zip)
    for r in batch.items:
        if args.verbose and r.seen:
            print(f"seen: item {r.item}: {r.seen}", file=sys.stderr)
        if r.status == "failed":
            print(f"failed: item {r.item} ({r.video}, {r.audio}): {r.error}", file=sys.stderr)
        elif r.attempts > 1:
            print(f"item {r.item} ({r.video}) took {r.attempts} attempts: a worker was lost", file=sys.stderr)
    counts = ", ".join(f"{batch.count(s)} {s}" for s in ("done", "skipped", "failed"))
    where = f"; zip: {batch.zip_path}" if batch.zip_path else ""
    print(f"{counts} in {batch.seconds:.1f} s; report: {batch.report_json}{where}", file=sys.stderr)
    return 1 if batch.count("failed") else 0
