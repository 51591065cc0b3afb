"""Making the video as long as the audio: trim, loop, ping-pong or freeze — streaming.

The source is re-read rather than buffered, so memory stays flat however often it repeats:
``open_frames(skip, cap)`` must return a fresh iterator over the source frames
``skip … skip+cap-1`` (cap 0 = to the end). The real length of the source is learnt while
reading (a header's frame count can be wrong), so the policy applies when the source actually
runs out.

- ``trim``: stop when either runs out (the output is as long as the shorter one).
- ``loop``: start again at frame 0 (the reference's ``i % len(frames)``): a visible jump.
- ``pingpong``: play backwards, then forwards again (0 1 2 … n-1 n-2 … 1 0 1 …): no jump.
  Backwards is read in segments of ``segment`` frames (each re-decoded from the source and
  reversed), so at most one segment is held; ``iter_frames`` starts each one at the keyframe
  before it (``lipsync.media._seek``), not at the first frame, so the cost stays linear in the length.
- ``freeze``: hold the last frame.
- ``auto``: ``trim`` when the audio is shorter than the video, ``pingpong`` when longer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..types import Frame, LengthPolicy

__all__ = ["FrameOpener", "sequence_frames"]

FrameOpener = Callable[[int, int], Iterator[Frame]]


def _backward(open_frames: FrameOpener, last: int, first: int, segment: int) -> Iterator[Frame]:
    """Frames ``last, last-1, …, first`` (inclusive), one segment in memory at a time."""
    end = last + 1
    while end > first:
        start = max(first, end - segment)
        chunk = list(open_frames(start, end - start))
        yield from reversed(chunk)
        end = start


def sequence_frames(
    open_frames: FrameOpener, n_out: int, policy: LengthPolicy, *, segment: int = 64
) -> Iterator[Frame]:
    """Yield up to ``n_out`` frames following ``policy`` (fewer only with ``trim``)."""
    if n_out <= 0:
        return
    produced = 0
    last: Frame | None = None
    source_len = 0
    for frame in open_frames(0, 0):
        yield frame
        last = frame
        source_len += 1
        produced += 1
        if produced >= n_out:
            return
    if last is None:
        return
    if policy in ("trim",):
        return
    if policy == "freeze" or source_len == 1:
        for _ in range(n_out - produced):
            yield last
        return
    if policy == "loop":
        while produced < n_out:
            for frame in open_frames(0, min(source_len, n_out - produced)):
                yield frame
                produced += 1
        return
    # pingpong (also what "auto" means once the audio turned out longer)
    forward = False
    while produced < n_out:
        if forward:
            it = open_frames(1, min(source_len - 1, n_out - produced))
        else:
            it = _backward(open_frames, source_len - 2, 0, segment)
        for frame in it:
            yield frame
            produced += 1
            if produced >= n_out:
                return
        forward = not forward
