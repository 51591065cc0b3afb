"""Joining video-only parts into one file without re-encoding, with the audio muxed once.

A long video rendered in frame ranges (a cluster's workers, each writing one part with
``VideoWriter(audio=None)``) becomes one file: the parts' packets are copied in order (no
decoding, no encoding), their timestamps moved on by the frames before them, so the joined
stream plays as if one encoder had written it. Each part starts on a keyframe (an encoder's first
frame always is one), so the join is a valid stream; with FFV1 (``lossless``) every frame is a
keyframe and the frames are the parts' frames, bit for bit. The audio (a file or a Waveform) is
encoded once, alongside, cut or padded to the joined length exactly as ``VideoWriter`` does.

The output appears under its name only when complete (``lipsync.media.atomic``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path

import av

from . import atomic
from ._encode_audio import _AudioPump, _AudioTrack, _FileAudio, _waveform_pump
from .atomic import write_error
from .formats import OUTPUT_CONTAINERS, frame_rate
from ..errors import AudioError, OutputError
from ..types import Waveform

__all__ = ["join_parts"]


def _packets(path: Path) -> Iterator[tuple[av.Packet, av.VideoStream]]:
    """The video packets of one part in file order (decode order), empty flush packets left out."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.size:
                    yield packet, stream
    except (av.FFmpegError, OSError, IndexError) as exc:
        raise OutputError(f"Cannot read the part {path.name} to join it ({exc}); render that part again.") from exc


def _template(path: Path) -> tuple[bytes | None, str, int, int]:
    with av.open(str(path), metadata_errors="ignore") as container:
        ctx = container.streams.video[0].codec_context
        return ctx.extradata, ctx.name, ctx.width, ctx.height


def _check_parts(parts: Sequence[Path]) -> None:
    """Every part holds the same codec, size and codec headers (one stream, so one header)."""
    first = _template(parts[0])
    for part in parts[1:]:
        other = _template(part)
        if other != first:
            raise OutputError(
                f"The parts {parts[0].name} and {part.name} were encoded differently ({first[1]} {first[2]}x{first[3]} "
                f"vs {other[1]} {other[2]}x{other[3]}, or other codec headers) and cannot be joined without "
                "re-encoding; render every part with the same settings."
            )


def _pump(audio: Waveform | str | os.PathLike[str] | None, codec: str) -> tuple[_AudioPump | None, _FileAudio | None]:
    if audio is None:
        return None, None
    if isinstance(audio, Waveform):
        return _waveform_pump(audio, codec, 0.0), None
    source = _FileAudio(os.fspath(audio), codec, 0.0)
    return source.pump, source


def join_parts(
    parts: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    fps: Fraction | int | float,
    *,
    audio: Waveform | str | os.PathLike[str] | None = None,
    lossless: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Write ``output``: the video packets of ``parts`` (video-only files of one codec and size,
    in timeline order, each starting on a keyframe) one after the other, timestamps continuous
    at ``fps``, and ``audio`` from its start, encoded once (AAC, FLAC with ``lossless``) and cut
    or padded to the joined length. Returns the number of frames.

    Raises OutputError (parts that differ, an unreadable part, a write error), AudioError.
    """
    paths = [Path(p) for p in parts]
    final = Path(output)
    rate = frame_rate(fps)
    fmt = OUTPUT_CONTAINERS.get(final.suffix.lower())
    if not paths:
        raise OutputError(f"Nothing to join into {final.name}: no parts were given.")
    if fmt is None:
        raise OutputError(f"Cannot write {final}: use a .mp4 (or .mov/.mkv) file name.")
    _check_parts(paths)
    temp, lock = atomic.reserve_temp(final)
    pump, source = None, None
    try:
        pump, source = _pump(audio, "flac" if lossless else "aac")
        options = {"movflags": "+faststart+use_metadata_tags" if metadata else "+faststart"} if fmt in ("mp4", "mov") else {}
        with av.open(str(temp), "w", format=fmt, options=options) as out:
            for key, value in (metadata or {}).items():
                out.metadata[key] = value
            frames = _copy(paths, out, rate, pump, lossless)
        atomic.commit(temp, final, lock)
        return frames
    except (AudioError, OutputError):
        atomic.discard(temp, lock)
        raise
    except (av.FFmpegError, OSError) as exc:
        atomic.discard(temp, lock)
        raise write_error(final, "joining the parts into", exc) from exc
    except BaseException:
        atomic.discard(temp, lock)
        raise
    finally:
        if source is not None:
            source.close()


def _copy(paths: Sequence[Path], out: av.container.OutputContainer, rate: Fraction, pump: _AudioPump | None,
          lossless: bool) -> int:
    """Mux the parts' packets into ``out`` (and the audio up to each packet's frames); the frame count."""
    with av.open(str(paths[0]), metadata_errors="ignore") as first:
        video = out.add_stream_from_template(first.streams.video[0])
    track = _AudioTrack(out, pump, lossless) if pump is not None else None
    before = 0  # frames of the parts already joined
    muxed = 0
    for path in paths:
        count = 0
        for packet, stream in _packets(path):
            tb = stream.time_base
            index = round(Fraction(packet.pts) * tb * rate)  # the frame's place in its part
            delay = Fraction(packet.pts - (packet.dts if packet.dts is not None else packet.pts)) * tb
            pts = Fraction(before + index) / rate
            packet.stream = video
            packet.time_base = tb  # the muxer rescales to the output's own time base
            packet.pts = round(pts / tb)
            packet.dts = round((pts - delay) / tb)
            out.mux(packet)
            count += 1
            muxed += 1
            if track is not None:
                track.fill_to(int(Fraction(muxed) * track.pump.rate / rate), out)
        before += count
    if track is not None:
        track.fill_to(round(Fraction(before) * track.pump.rate / rate), out, final=True)
    return before
