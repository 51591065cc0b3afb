"""The file types the library reads and writes, and the one way a frame rate becomes a Fraction.

Suffixes are lower case with the dot; compare ``Path(p).suffix.lower()`` against them.

- ``VIDEO_SUFFIXES``: containers FFmpeg reads that a video input accepts.
- ``FOLDER_VIDEO_SUFFIXES``: the subset a folder contributes to a batch (a folder of clips rarely
  holds .gif/.3gp/.mts on purpose; those still count when listed or globbed by name).
- ``STILL_SUFFIXES``: images read as a video of one frame.
- ``VIDEO_INPUT_SUFFIXES``: what a video input accepts, videos and stills.
- ``AUDIO_SUFFIXES``: what a folder contributes to a batch as audios (any file FFmpeg decodes,
  a video's sound track included, is accepted when named).
- ``OUTPUT_CONTAINERS``: the output suffixes the writer supports and their FFmpeg muxer, .mp4
  first (the default); ``OUTPUT_SUFFIXES`` is the same list as a tuple.

``frame_rate`` turns what users and hosts pass (25, 29.97, 30000/1001, a numpy number) into the
exact rate; ``nominal_rate`` snaps a rate measured from a file (frames / duration) to the
standard rate it stands for.
"""

from __future__ import annotations

import numbers
from fractions import Fraction
from typing import Any

__all__ = [
    "AUDIO_SUFFIXES",
    "FOLDER_VIDEO_SUFFIXES",
    "MAX_RATE_DENOMINATOR",
    "OUTPUT_CONTAINERS",
    "OUTPUT_SUFFIXES",
    "STILL_SUFFIXES",
    "VIDEO_INPUT_SUFFIXES",
    "VIDEO_SUFFIXES",
    "frame_rate",
    "nominal_rate",
]

FOLDER_VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
)
VIDEO_SUFFIXES = FOLDER_VIDEO_SUFFIXES | {".gif", ".mts", ".m2ts", ".3gp"}
STILL_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
VIDEO_INPUT_SUFFIXES = VIDEO_SUFFIXES | STILL_SUFFIXES
AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".opus", ".wma", ".aif", ".aiff"})
OUTPUT_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
OUTPUT_SUFFIXES = tuple(OUTPUT_CONTAINERS)

MAX_RATE_DENOMINATOR = 100_000
"""A float rate is the nearest fraction with at most this denominator: 29.97002997 is 30000/1001
(a float cannot hold 30000/1001 exactly), 29.97 stays 2997/100."""


def frame_rate(value: Any) -> Fraction:
    """The exact frame rate in frames per second for ``value``.

    A Fraction is returned as it is, an integer (Python or numpy) exactly; anything else is
    taken as a float (float, numpy floating, a numeric string) and snapped to the nearest
    fraction with a denominator of at most ``MAX_RATE_DENOMINATOR`` (25.0 -> 25,
    29.97002997 -> 30000/1001, 23.976 -> 2997/125, 12.5 -> 25/2). Raises ValueError when the
    value is not a positive finite number.
    """
    try:
        if isinstance(value, Fraction):
            rate = value
        elif isinstance(value, numbers.Integral):
            rate = Fraction(int(value))
        else:
            rate = Fraction(float(value)).limit_denominator(MAX_RATE_DENOMINATOR)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"fps must be a positive number, got {value!r}") from None
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {value}")
    return rate


def nominal_rate(measured: Fraction) -> Fraction:
    """``measured``, or the N·1000/1001 or whole-number rate within 0.05 % of it.

    An MP4's average rate is frames / duration, and the duration counts the last frame's own
    duration, which muxers and phones set loosely: a 25 fps clip can average 240000/9601.
    """
    for nominal in (Fraction(round(measured * Fraction(1001, 1000)) * 1000, 1001), Fraction(round(measured))):
        if nominal > 0 and abs(measured / nominal - 1) <= Fraction(1, 2000):
            return nominal
    return measured
