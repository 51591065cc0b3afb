"""Where a file's audio plays: decoded blocks placed at their timestamps on the picture's clock.

A file's audio track does not always begin with the picture, nor run without holes. Players
place every decoded frame at its presentation time; so does this module, on a clock whose 0 is
the first video frame (for a file without video: the first audio sample):

- a track that starts after the picture (an edit list's empty edit, a start offset written by a
  camera or an editor) gets silence before it;
- a hole in the track (missing packets) is filled with silence of its length;
- audio before the first video frame (a video track that starts late) is cut, since frame 0 is
  shown only from that instant;
- codec priming and padding go as the container declares them. FFmpeg already drops the
  priming it is told about (the ``skip_samples`` of an MP4 edit list, the LAME/Xing encoder
  delay and padding of an MP3, Opus pre-skip); the padding at the end of an MP4/MOV/M4A track
  is not dropped by FFmpeg, so the track is cut at the end its edit list declares
  (``start_time + duration``). Other containers declare no end (Matroska's ``DURATION`` tag is
  the muxer's measure, padding included), and a raw ADTS ``.aac`` declares no priming: such
  audio is kept as decoded, as players do.

Timestamps closer than ``tolerance`` to where the previous block ended count as contiguous,
so the rounding of coarse time bases (Matroska's milliseconds) neither adds nor drops samples.
Broken timestamps (a leap of more than a minute, a step back of more than a second: joined
recordings, damaged files) restart the clock there, so the audio follows on without a gap.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

GAP_TOLERANCE_S = 0.001
"""A timestamp this far (or one time-base tick, if coarser) from the running position is jitter,
not a gap or an overlap."""
MAX_LEAP_S = 60.0
"""A timestamp leap longer than this is a broken timestamp, not a pause (as for the video)."""
MAX_REWIND_S = 1.0
"""A timestamp further back than this is a reset of the clock (joined recordings), not an overlap."""
SILENCE_BLOCK = 16384
"""Silence is handed out in blocks of at most this many samples (bounded memory per block)."""
_DECLARED_END_FORMATS = ("mov", "mp4", "m4a", "3gp")
"""Demuxers (``container.format.name`` contains one) whose track duration is the edit list's."""


def video_stream(container: Any) -> Any | None:
    """The first real video stream (cover art in a music file is no picture), or None."""
    import av

    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    return None if value is None or not time_base else float(value * time_base)


def clock_origin(container: Any, audio: Any) -> float | None:
    """The container time (s) that is 0 on the output clock: the first video frame's
    presentation time; for a file without video, the audio's own start (None: its first frame)."""
    video = video_stream(container)
    if video is not None:
        start = _seconds(video.start_time, video.time_base)
        return 0.0 if start is None else start
    return _seconds(audio.start_time, audio.time_base)


def declared_end(container: Any, audio: Any) -> float | None:
    """Where the container says the audio track ends (container time, s), when it says so
    exactly (MP4/MOV/M4A: the edit list's start + duration); else None."""
    if not any(name in container.format.name for name in _DECLARED_END_FORMATS):
        return None
    start = _seconds(audio.start_time, audio.time_base)
    length = _seconds(audio.duration, audio.time_base)
    if start is None or not length:
        return None
    return start + length


@dataclass
class Placement:
    """What placing the track did, in seconds on the output clock (0 = first video frame).

    ``start``: where the first decoded sample plays (> 0: silence before it; < 0: that much
    audio before the picture was cut). ``gaps``: (where, how long) of each hole filled with
    silence. ``trimmed``: padding cut at the declared end. ``resets``: broken timestamps
    (leaps, rewinds) where the audio was taken to follow on without a gap.
    """

    start: float | None = None
    gaps: list[tuple[float, float]] = field(default_factory=list)
    trimmed: float = 0.0
    resets: int = 0


class Placer:
    """Turns decoded blocks with timestamps into one gapless stream of samples at ``rate``.

    ``place(block, time)`` takes a float32 (channels, n) block whose first sample is presented
    at container time ``time`` (None: right after the previous block) and yields what the
    output gets from it: silence for a hole before it, then the block minus any part that lies
    before the output's 0, before the end of what was already given (an overlap) or after the
    declared end. ``origin`` None takes the first block's time as 0.
    """

    def __init__(self, rate: int, channels: int, origin: float | None, end: float | None, tick: float = 0.0) -> None:
        self.rate, self.channels = rate, channels
        self.origin, self.end = origin, end
        self.position = 0
        self._next = 0  # where the next block starts if it follows the last one without a gap
        self.tolerance = max(math.ceil(GAP_TOLERANCE_S * rate), math.ceil(tick * rate))
        self.placement = Placement()
        self._limit: int | None = None

    def _silence(self, count: int) -> Iterator[FloatArray]:
        while count > 0:
            size = min(count, SILENCE_BLOCK)
            count -= size
            yield np.zeros((self.channels, size), np.float32)

    def place(self, block: FloatArray, time: float | None) -> Iterator[FloatArray]:
        first = self.placement.start is None
        if first:
            if self.origin is None:
                self.origin = time if time is not None else 0.0
            if self.end is not None:
                self._limit = round((self.end - self.origin) * self.rate)
        at = self._where(block, time, first)
        if at > self.position:
            if not first:
                self.placement.gaps.append((self.position / self.rate, (at - self.position) / self.rate))
            fill = self._room(at - self.position)
            yield from self._silence(fill)
            self.position += fill
        skip = self.position - at  # > 0: the block starts before what the output already has
        if skip >= block.shape[1]:
            return
        if skip > 0:
            block = block[:, skip:]
        keep = self._room(block.shape[1])
        if keep < block.shape[1]:
            self.placement.trimmed += (block.shape[1] - keep) / self.rate
            block = block[:, :keep]
        if keep:
            self.position += keep
            yield block

    def _where(self, block: FloatArray, time: float | None, first: bool) -> int:
        """The output sample where ``block`` starts: its timestamp on the output clock, or right
        after the previous block when it has none, lies within the jitter tolerance, or is broken
        (a leap forward of more than ``MAX_LEAP_S``, back by more than ``MAX_REWIND_S``: a
        timestamp reset, where the clock restarts)."""
        at = self._next if time is None else round((time - self.origin) * self.rate)  # type: ignore[operator]
        if first:
            broken = at > MAX_LEAP_S * self.rate
            if not broken:
                self.placement.start = at / self.rate
        else:
            step = at - self._next
            broken = not -MAX_REWIND_S * self.rate <= step <= MAX_LEAP_S * self.rate
            if abs(step) <= self.tolerance:
                at = self._next  # jitter of the time base: contiguous
        if broken and time is not None:
            at = self.position if first else self._next
            self.origin = time - at / self.rate
            self.placement.resets += 1
            if first:
                self.placement.start = 0.0
        self._next = at + block.shape[1]
        return at

    def _room(self, count: int) -> int:
        """How many of ``count`` more samples fit before the declared end."""
        return count if self._limit is None else max(0, min(count, self._limit - self.position))


def header_gaps(container: Any, audio: Any, origin: float) -> tuple[tuple[float, float], ...] | None:
    """Holes in the audio track read from the container's index (no decoding): (where, how
    long) in seconds, where measured from container time ``origin``; None when the container has no full index (only MP4/MOV list
    every packet). A hole is a step between packets over 1.5 times the usual one."""
    if not any(name in container.format.name for name in _DECLARED_END_FORMATS):
        return None
    entries = getattr(audio, "index_entries", None)
    if entries is None or len(entries) < 3 or not audio.time_base:
        return None
    times = np.array([entry.timestamp for entry in entries], dtype=np.int64)
    steps = np.diff(times)
    usual = int(np.median(steps))
    if usual <= 0:
        return None
    holes = np.flatnonzero(steps > 1.5 * usual)
    base = float(audio.time_base)
    return tuple((float((times[i] + usual) * base) - origin, float((steps[i] - usual) * base)) for i in holes)


def header_report(container: Any) -> tuple[float | None, tuple[tuple[float, float], ...] | None]:
    """(start, gaps) of the first audio track from the header alone, in seconds from the first
    video frame: ``start`` where the track's first sample plays (> 0: it starts late), None
    without audio or a start time; ``gaps`` as ``header_gaps``."""
    if not container.streams.audio:
        return None, None
    audio = container.streams.audio[0]
    origin = clock_origin(container, audio)
    start = _seconds(audio.start_time, audio.time_base)
    if origin is None or start is None:
        return None, None
    return start - origin, header_gaps(container, audio, origin)
