"""What the node modules share: the pack's custom io types, categories and input checks."""

from __future__ import annotations

import os
from typing import Any

from comfy_api.latest import io

from ..lipsync.errors import InputError
from ..lipsync.types import Box
from ..lipsync.media.formats import VIDEO_INPUT_SUFFIXES, VIDEO_SUFFIXES
from ..lipsync.media.formats import frame_rate as as_rate

__all__ = [
    "BOX_TOOLTIP",
    "CATEGORY",
    "FACES",
    "FPS_MAX",
    "FPS_MIN",
    "MEL",
    "PREFIX",
    "WAV2LIP",
    "as_rate",
    "available_memory",
    "category",
    "fps_problem",
    "gigabytes",
    "input_video_problem",
    "input_videos",
    "memory_problem",
    "mtime",
    "parse_box",
]

BOX_TOOLTIP = (
    "A fixed face box instead of detection: top, bottom, left, right in pixels (e.g. 120, 380, 150, 360), "
    "the same for every frame, as the original's --box. Empty = detect. Costs nothing; use it when the "
    "detector misses the face."
)

PREFIX = "ReSync"
"""Every node id, display name and custom type of the pack starts with it."""

CATEGORY = PREFIX

MEL = io.Custom("RESYNC_MEL")
"""``lipsync.engine.graph.MelFrames``: one mel window per output frame."""
FACES = io.Custom("RESYNC_FACES")
"""``lipsync.engine.graph.FaceTrack``: one face box (or none) per frame."""
WAV2LIP = io.Custom("RESYNC_WAV2LIP")
"""The pack's one model type, whichever family it holds: ``nodes.model.Wav2LipModel`` or
``nodes.musetalk.MuseTalkModel`` (both give a ``Generator`` through ``generator()``), managed by the
host's model manager. The id keeps its first family's name so saved workflows keep their links."""

FPS_MIN, FPS_MAX = 0.1, 240.0

MEMORY_SHARE = 0.75
"""The share of the free RAM one IMAGE batch may take: the rest is for the host, the models and
the copies the next nodes make."""

def category(sub: str) -> str:
    return f"{CATEGORY}/{sub}"


def fps_problem(fps: Any) -> str | None:
    """None when ``fps`` is usable, else the sentence that says why not."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        return f"fps must be a number, got {fps!r}."
    if not FPS_MIN <= value <= FPS_MAX:
        return f"fps {value:g} is out of range; use a frame rate between {FPS_MIN:g} and {FPS_MAX:g}."
    return None


def input_video_problem(name: str, path: str | None) -> str | None:
    """None when ``path`` (the resolved ``name``) is a video or image file we can read."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in VIDEO_INPUT_SUFFIXES:
        shown = suffix or "no extension"
        return (
            f"Unsupported file type ({shown}) for '{name}': give a video (mp4, mov, mkv, webm, avi, ...) "
            f"or an image (png, jpg, webp)."
        )
    if path is None or not os.path.isfile(path):
        return f"Video file '{name}' was not found in ComfyUI's input folder; upload it or pick another file."
    return None


def mtime(path: str | None) -> float:
    """A file's modification time for ``fingerprint_inputs`` (NaN when missing: always re-run)."""
    try:
        return os.path.getmtime(path) if path else float("nan")
    except OSError:
        return float("nan")


def input_videos(input_dir: str) -> list[str]:
    """The video files directly in ComfyUI's input folder, for the upload combos (images are
    accepted by name too, but not listed: the input folder is usually full of them)."""
    try:
        names = os.listdir(input_dir)
    except OSError:
        return []
    return sorted(
        n for n in names if os.path.splitext(n)[1].lower() in VIDEO_SUFFIXES and os.path.isfile(os.path.join(input_dir, n))
    )


def available_memory() -> int | None:
    """Bytes of RAM free for new allocations now (psutil when present, else the OS's count of
    free pages, which ignores reclaimable cache and so errs low); None when unknown."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.virtual_memory().available)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def gigabytes(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB"


def memory_problem(frames: int, height: int, width: int, fix: str) -> str | None:
    """None when ``frames`` IMAGE frames of ``width`` x ``height`` (float32 RGB: 12 bytes a pixel)
    fit in the free RAM; else the sentence that says how much is needed and ``fix``."""
    free = available_memory()
    need = frames * height * width * 12
    if free is None or need <= free * MEMORY_SHARE:
        return None
    fit = int(free * MEMORY_SHARE // max(1, height * width * 12))
    return (
        f"{frames} frames of {width}x{height} need about {gigabytes(need)} of RAM as ComfyUI images "
        f"(float32), but only {gigabytes(free)} is free (at most {fit} such frames fit). {fix}"
    )


def parse_box(text: str) -> Box | None:
    """``"top, bottom, left, right"`` (pixels) as a Box; None for an empty string."""
    if not text or not text.strip():
        return None
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        top, bottom, left, right = (round(float(p)) for p in parts)
    except ValueError:
        raise InputError(
            f"fixed_box {text!r} is not four numbers; write top, bottom, left, right in pixels, "
            "e.g. 120, 380, 150, 360."
        ) from None
    box = Box(top=top, bottom=bottom, left=left, right=right)
    if not box.is_valid():
        raise InputError(f"fixed_box {text!r} is empty: top must be below bottom and left below right.")
    return box
