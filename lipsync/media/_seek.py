"""Jumping into a video that was read through once already (the backward half of ping-pong).

Ping-pong plays the video backwards in segments: frames 955…1018, then 891…954, and so on. Read
from the start each time, the n-th segment decodes n·64 frames to throw them away, so a
10-minute clip costs over a million frame decodes per backward pass. A decoder can only start at
a keyframe, though, and which frames are keyframes (and how timestamps map to frame numbers) is
learnt for free on the first, forward pass. ``iter_frames`` records it here; a later read that
skips frames then seeks to the last keyframe before the first wanted frame and decodes from
there: at most one group of pictures (x264: 250 frames; FFV1: 1) is thrown away per segment.

Only files whose timestamps were regular on that pass are jumped into (every frame one slot on,
as ``_constant_rate`` saw it): there the slot of a frame is ``round((time - origin) * rate)``
wherever decoding starts. Variable-rate and broken-timestamp files keep the slow, exact path, and
so does any jump whose frames do not land on the slots expected (``Drift``).
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av

__all__ = ["Drift", "Recorder", "Timeline", "jump", "lookup", "scan"]

_CACHE: OrderedDict[tuple[str, int, int], Timeline] = OrderedDict()
_CACHE_SIZE = 8
_CACHE_LOCK = threading.Lock()  # decoding threads record, other threads look up


class Drift(Exception):
    """A jump did not land where the timeline said: read this part from the start instead."""


@dataclass
class Timeline:
    """What a pass from a file's first frame learnt: slot k shows at ``origin + k / rate``."""

    origin: Fraction
    rate: Fraction
    keyframes: list[int] = field(default_factory=list)
    covered: int = 0  # slots seen (the whole file when that pass ran to the end)

    def start_for(self, skip: int) -> int | None:
        """The last keyframe slot at or before ``skip`` (None: no jump, start from the top)."""
        if skip >= self.covered:
            return None
        at = bisect.bisect_right(self.keyframes, skip)  # FFV1: every frame is one, so not a scan
        return self.keyframes[at - 1] if at and self.keyframes[at - 1] > 0 else None


def _key(path: str) -> tuple[str, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def lookup(path: str) -> Timeline | None:
    """The timeline of ``path`` as it is now (a changed file has none)."""
    key = _key(path)
    if key is None:
        return None
    with _CACHE_LOCK:
        return _CACHE.get(key)


class Recorder:
    """Fed by ``_constant_rate`` on a pass that starts at the first frame; kept if regular."""

    def __init__(self, path: str, rate: Fraction) -> None:
        self.path = path
        self.rate = rate
        self.timeline: Timeline | None = None
        self.regular = True

    def slot(self, slot: int, frame: av.VideoFrame, time: Fraction | None, regular: bool) -> None:
        """Frame ``frame`` (timestamp ``time``) fills slot ``slot``; ``regular``: one slot on."""
        if not self.regular:
            return
        if time is None or not regular:
            self.regular = False
            return
        if self.timeline is None:
            self.timeline = Timeline(origin=time, rate=self.rate)
        if frame.key_frame:
            self.timeline.keyframes.append(slot)
        self.timeline.covered = slot + 1

    def save(self) -> None:
        key = _key(self.path)
        if key is None:
            return
        with _CACHE_LOCK:
            if not self.regular or self.timeline is None:
                _CACHE.pop(key, None)
                return
            _CACHE[key] = self.timeline
            _CACHE.move_to_end(key)
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)


def scan(path: str, container: av.container.InputContainer, stream: av.VideoStream, rate: Fraction,
         origin: Fraction) -> bool:
    """Learn ``path``'s timeline from its packets alone (no decoding) and remember it, so that a
    process that never read the file through (a cluster worker given a frame range) can jump.

    ``origin`` is the time of the first decoded frame (what ``_constant_rate`` counts from). Kept
    only when every packet's timestamp lands on the next free slot from there (sorted: decode
    order differs with B-frames); otherwise False and reads stay on the exact path.
    """
    tb = stream.time_base
    if tb is None:
        return False
    times: list[tuple[Fraction, bool]] = []
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        if packet.pts is None:
            return False
        times.append((Fraction(packet.pts) * tb, bool(packet.is_keyframe)))
    times.sort(key=lambda t: t[0])
    timeline = Timeline(origin=origin, rate=rate)
    for slot, (time, key) in enumerate(times):
        if round((time - origin) * rate) != slot:
            return False
        if key:
            timeline.keyframes.append(slot)
    timeline.covered = len(times)
    key_ = _key(path)
    if key_ is None or not times:
        return False
    with _CACHE_LOCK:
        _CACHE[key_] = timeline
        _CACHE.move_to_end(key_)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return True


def jump(
    container: av.container.InputContainer, stream: av.VideoStream, timeline: Timeline, start: int, first: int
) -> Iterator[tuple[int, av.VideoFrame]]:
    """(slot, frame) from slot ``first`` on, decoding from the keyframe at slot ``start``.

    Raises Drift (before or after some frames) when a frame's timestamp is not the next slot.
    """
    if stream.time_base is None:
        raise Drift("no time base")
    target = timeline.origin + Fraction(start) / timeline.rate
    try:
        container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
    except (av.FFmpegError, OSError) as exc:
        raise Drift(str(exc)) from exc
    expected = None
    for packet in container.demux(stream):
        for frame in packet.decode():
            if frame.pts is None or frame.time_base is None:
                raise Drift("a frame without a timestamp")
            slot = round((Fraction(frame.pts) * frame.time_base - timeline.origin) * timeline.rate)
            if expected is None:
                if slot > start:
                    raise Drift(f"landed at slot {slot}, after keyframe {start}")
                expected = slot
            if slot != expected:
                raise Drift(f"slot {slot} where {expected} was expected")
            expected += 1
            if slot >= first:
                yield slot, frame
