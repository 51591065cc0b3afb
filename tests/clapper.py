"""Clapper media for the audio-timeline tests: white flash frames and 2 kHz beeps at the same
instants, so any shift between picture and sound is measurable in the output.

``clapper`` writes an H.264 + AAC mp4 with PyAV where the tracks may start at different times
(the mp4 muxer writes the edit lists, as cameras and editors do) and audio packets may be
dropped (a hole). ``flash_times`` finds the flashes by mean brightness, ``beep_times`` the beeps
by the level of their 2 kHz tone, ``audio_at_pts`` decodes a written file's audio by placing each frame at
its own timestamp (nothing else), as an independent check of the library's placement.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = ["FPS", "RATE", "add_audio", "assert_on_flashes", "audio_at_pts", "beep_times", "clapper", "flash_times", "write_audio"]

FPS = 25
RATE = 16000
SIZE = 64
BEEP_S = 0.04
DARK, WHITE = 30, 235


def beeps(times: Iterable[float], start: float, seconds: float, rate: int = RATE) -> np.ndarray:
    """A mono track covering [start, seconds) of the file's clock with a 2 kHz beep at each time."""
    track = np.zeros(round((seconds - start) * rate), np.float32)
    t = np.arange(round(BEEP_S * rate)) / rate
    beep = (0.5 * np.sin(2 * np.pi * 2000 * t)).astype(np.float32)
    for when in times:
        at = round((when - start) * rate)
        if 0 <= at < len(track):
            piece = beep[: len(track) - at]
            track[at : at + len(piece)] = piece
    return track


def add_audio(container: av.container.OutputContainer, rate: int, codec: str = "aac") -> av.AudioStream:
    stream = container.add_stream(codec, rate=rate, layout="mono")
    stream.codec_context.time_base = Fraction(1, rate)
    return stream


def write_audio(
    container: av.container.OutputContainer, stream: av.AudioStream, samples: np.ndarray, rate: int,
    first_pts: int = 0, drop: tuple[float, float] | None = None,
) -> None:
    """Encode mono ``samples`` into ``stream`` (``add_audio``) starting at ``first_pts`` (1/rate
    units); packets whose time falls in ``drop`` (seconds) are left out (a hole)."""
    size = stream.codec_context.frame_size or 1152
    convert = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate)

    def mux(packets: Sequence[av.Packet]) -> None:
        for packet in packets:
            when = float(packet.pts * packet.time_base) if packet.pts is not None else None
            if drop is None or when is None or not drop[0] <= when < drop[1]:
                container.mux(packet)

    pts = first_pts
    for begin in range(0, len(samples), size):
        block = np.ascontiguousarray(samples[begin : begin + size][None])
        frame = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
        frame.sample_rate = rate
        for out in convert.resample(frame):
            out.pts, out.time_base = pts, Fraction(1, rate)
            pts += out.samples
            mux(stream.encode(out))
    mux(stream.encode(None))


def clapper(
    path: Path, *, seconds: float = 4.0, flashes: Sequence[float] = (0.6, 1.4, 2.6, 3.4),
    extra_beeps: Sequence[float] = (), audio_from: float = 0.0, video_from: float = 0.0,
    drop: tuple[float, float] | None = None, rate: int = RATE, size: int = SIZE,
) -> Path:
    """A ``size``² H.264 + AAC mp4: flashes (white frames) and beeps at ``flashes`` (s on the file's
    clock, on frame instants); picture from ``video_from``, sound from ``audio_from`` to
    ``seconds``; ``extra_beeps`` sound without a flash; audio packets in ``drop`` left out."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        audio = add_audio(container, rate)
        first = round(video_from * FPS)
        lit = {round(f * FPS) for f in flashes}
        for k in range(first, round(seconds * FPS)):
            level = WHITE if k in lit else DARK
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), level, np.uint8), format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        track = beeps([*flashes, *extra_beeps], audio_from, seconds, rate)
        write_audio(container, audio, track, rate, first_pts=round(audio_from * rate), drop=drop)
    return path


def flash_times(frames: Iterable[np.ndarray], fps: float = FPS) -> list[float]:
    """The time (frame index / fps) of the first frame of every run of bright frames."""
    lit = [float(np.mean(frame)) > (DARK + WHITE) / 2 for frame in frames]
    return [k / fps for k, on in enumerate(lit) if on and (k == 0 or not lit[k - 1])]


def beep_times(samples: np.ndarray, rate: int) -> list[float]:
    """Onsets of the 2 kHz beeps in (channels, n) or (n,) samples: the 2 kHz component's level over
    10 ms (sliding by 1 ms) passing half its peak, i.e. the window half over the beep, so its
    centre is the onset; the first of each group more than 0.2 s apart (speech around the beeps
    hardly has a steady 2 kHz tone)."""
    mono = (samples if samples.ndim == 1 else samples.mean(axis=0)).astype(np.float64)
    if not len(mono):
        return []
    turn = mono * np.exp(-2j * np.pi * 2000 * np.arange(len(mono)) / rate)
    window, hop = max(1, rate // 100), max(1, rate // 1000)
    sums = np.concatenate([[0], np.cumsum(turn)])
    level = np.abs(sums[window::hop] - sums[: len(sums) - window : hop]) / window
    if not len(level) or level.max() <= 0:
        return []
    loud = np.flatnonzero(level > level.max() / 2)
    onsets = [int(loud[0])] + [int(b) for a, b in itertools.pairwise(loud) if (b - a) * hop > 0.2 * rate]
    return [(k * hop + window / 2) / rate for k in onsets]


def audio_at_pts(path: Path) -> tuple[np.ndarray, int]:
    """A written file's first audio track as mono float32, every decoded frame put at its own
    timestamp relative to the first video frame (FFmpeg already drops the declared priming)."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        origin = float(video.start_time * video.time_base) if video.start_time is not None else 0.0
        stream = container.streams.audio[0]
        rate = stream.rate
        pieces = []
        for frame in container.decode(stream):
            data = frame.to_ndarray().astype(np.float32)
            mono = data.reshape(len(frame.layout.channels), -1).mean(axis=0) if frame.format.is_planar else (
                data.reshape(-1, len(frame.layout.channels)).mean(axis=1))
            pieces.append((round((float(frame.pts * frame.time_base) - origin) * rate), mono))
    end = max(at + len(x) for at, x in pieces)
    out = np.zeros(end, np.float32)
    for at, x in pieces:
        if at < 0:
            x, at = x[-at:], 0
        out[at : at + len(x)] = x
    return out, rate


def assert_on_flashes(beeps_s: Sequence[float], flashes_s: Sequence[float], fps: float = FPS) -> None:
    """Every beep within one frame of a flash, and as many beeps as flashes."""
    assert len(beeps_s) == len(flashes_s), f"beeps at {beeps_s}, flashes at {flashes_s}"
    for beep, flash in zip(beeps_s, flashes_s):
        assert abs(beep - flash) <= 1 / fps, f"beep at {beep:.3f} s, its flash at {flash:.3f} s"
