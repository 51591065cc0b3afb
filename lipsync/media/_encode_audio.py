"""The audio side of ``VideoWriter``: the user's audio (a Waveform, or streamed from a file) cut
or padded to the video and encoded as AAC (FLAC when lossless) at its own rate and channels.

Kept apart from the video side so each reads on its own; only ``_encode`` uses it.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av
import numpy as np

from .audio import PlacedAudio
from ..errors import AudioError
from ..types import Waveform

AAC_BITRATE_PER_CHANNEL = 96_000
AAC_FALLBACK_RATE = 48_000
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
_CHUNK = 4096


def _audio_rate(codec: str, rate: int) -> int:
    """The source rate when the codec takes it (AAC has a fixed list), else 48 kHz."""
    allowed = av.codec.Codec(codec, "w").audio_rates
    return rate if not allowed or rate in allowed else AAC_FALLBACK_RATE


class _AudioPump:
    """Float32 planar samples at the output rate and layout, read in exact amounts.

    Wraps a lazy stream of ``av.AudioFrame`` (decoded from a file or cut from an array) and
    resamples it (a pass-through when rate and layout already match), or a lazy stream of
    float32 (channels, n) arrays already at the output rate and layout (``ready``); drops the
    first ``skip`` samples (``audio_start``), prepends silence for a negative start and returns
    silence after the end, so the caller can always ask for exactly the samples the video needs.
    """

    def __init__(
        self, frames: Iterator[av.AudioFrame] | Iterator[np.ndarray], rate: int, layout: str, start_s: float,
        source: str, *, ready: bool = False,
    ) -> None:
        self.source = source
        self.rate = rate
        self.layout = layout
        self.channels = av.AudioLayout(layout).nb_channels
        self._frames: Iterator[Any] | None = frames
        self._resampler = None if ready else av.AudioResampler(format="fltp", layout=layout, rate=rate)
        self._blocks: deque[np.ndarray] = deque()
        self._buffered = 0
        offset = round(start_s * rate)
        self._skip = max(offset, 0)
        if offset < 0:
            self._push(np.zeros((self.channels, -offset), np.float32))

    def _push(self, block: np.ndarray) -> None:
        if block.shape[1]:
            self._blocks.append(block)
            self._buffered += block.shape[1]

    def _convert(self, frame: av.AudioFrame | None) -> list[np.ndarray]:
        try:
            converted = self._resampler.resample(frame)  # type: ignore[union-attr]
        except (av.FFmpegError, ValueError) as exc:
            raise AudioError(
                f"Cannot convert the audio {self.source} to {self.layout} at {self.rate} Hz ({exc}); "
                "re-export it as stereo WAV."
            ) from exc
        return [out.to_ndarray().astype(np.float32, copy=False) for out in converted]

    def _pull(self) -> bool:
        """Decode (and resample) one more piece of the source into the buffer; False at the end."""
        if self._frames is None:
            return False
        item = next(self._frames, None)
        if item is None:
            self._frames = None
        if self._resampler is not None:
            blocks = self._convert(item)
        else:
            blocks = [] if item is None else [item]
        for block in blocks:
            if self._skip:
                cut = min(self._skip, block.shape[1])
                block, self._skip = block[:, cut:], self._skip - cut
            self._push(block)
        return True

    def read(self, count: int) -> np.ndarray:
        """Exactly ``count`` samples (channels, count); silence once the source has run out."""
        while self._buffered < count and self._pull():
            pass
        parts, need = [], count
        while need and self._blocks:
            block = self._blocks.popleft()
            if block.shape[1] > need:
                self._blocks.appendleft(block[:, need:])
                block = block[:, :need]
            parts.append(block)
            need -= block.shape[1]
        self._buffered -= count - need
        if need:
            parts.append(np.zeros((self.channels, need), np.float32))
        return np.ascontiguousarray(np.concatenate(parts, axis=1))


def _waveform_frames(wave: Waveform, layout: str) -> Iterator[av.AudioFrame]:
    """Cut a Waveform into small fltp frames, so resampling works in bounded pieces."""
    samples = wave.samples
    for start in range(0, wave.num_samples, _CHUNK):
        chunk = np.ascontiguousarray(samples[:, start : start + _CHUNK], dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate = wave.sample_rate
        yield frame


def _waveform_pump(wave: Waveform, codec: str, start_s: float) -> _AudioPump:
    samples = wave.samples
    if samples.ndim != 2 or samples.shape[0] not in _LAYOUTS or samples.shape[1] == 0:
        raise AudioError(
            f"The audio {wave.source} has shape {samples.shape}; "
            "expected (channels, samples) with 1-8 channels and at least one sample."
        )
    if wave.sample_rate <= 0 or not np.isfinite(samples).all():
        raise AudioError(
            f"The audio {wave.source} has NaN/inf samples or a bad sample rate ({wave.sample_rate}); clean it first."
        )
    layout = _LAYOUTS[wave.channels]
    rate = _audio_rate(codec, wave.sample_rate)
    return _AudioPump(_waveform_frames(wave, layout), rate, layout, start_s, wave.source)


class _FileAudio:
    """Stream-decodes the first audio track of a file, placed on the file's own timeline (as
    ``load_audio`` places it: 0 s is its first video frame); the file stays open until ``close``."""

    def __init__(self, path: str, codec: str, start_s: float) -> None:
        self.path = path
        if not os.path.isfile(path):
            raise AudioError(f"The audio file {path} does not exist; check the path.")
        self._placed = PlacedAudio(path)
        channels, rate = self._placed.channels, self._placed.sample_rate
        layout = _LAYOUTS.get(channels, "stereo")  # >8 channels: downmixed to stereo
        out_rate = _audio_rate(codec, rate)
        if out_rate == rate and channels in _LAYOUTS:  # the usual case: no conversion at all
            self.pump = _AudioPump(self._placed.blocks(), rate, layout, start_s, path, ready=True)
        else:
            self.pump = _AudioPump(self._frames(channels, rate), out_rate, layout, start_s, path)

    def _frames(self, channels: int, rate: int) -> Iterator[av.AudioFrame]:
        """The placed blocks as packed float frames of about ``_CHUNK`` samples (codec frames of
        1024 joined: fewer calls) for the pump's resampler; channels beyond 8 are averaged to
        mono first (no layout tells where they sit), which the pump then spreads to stereo."""
        layout = _LAYOUTS.get(channels, "mono")
        pending: list[np.ndarray] = []
        count = 0
        for block in itertools.chain(self._placed.blocks(), [None]):
            if block is not None:
                pending.append(block if channels in _LAYOUTS else block.mean(axis=0, keepdims=True))
                count += block.shape[1]
                if count < _CHUNK:
                    continue
            if not pending:
                break
            joined = np.concatenate(pending, axis=1) if len(pending) > 1 else pending[0]
            pending, count = [], 0
            packed = np.ascontiguousarray(joined.T, dtype=np.float32).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=layout)
            frame.sample_rate = rate
            yield frame

    def close(self) -> None:
        self._placed.close()


class _AudioTrack:
    """The encoder side: feeds the muxer exactly the samples that cover the frames so far."""

    def __init__(self, container: av.container.OutputContainer, pump: _AudioPump, lossless: bool) -> None:
        self.pump = pump
        codec = "flac" if lossless else "aac"
        self.stream = container.add_stream(codec, rate=pump.rate, layout=pump.layout)
        self.stream.format = "s16" if lossless else "fltp"
        if not lossless:
            self.stream.bit_rate = AAC_BITRATE_PER_CHANNEL * pump.channels
        self.stream.codec_context.time_base = Fraction(1, pump.rate)
        self.stream.codec_context.open()
        self.frame_size = self.stream.codec_context.frame_size or 1024
        self.written = 0

    def _frame(self, block: np.ndarray) -> av.AudioFrame:
        if self.stream.format.name == "s16":
            pcm = (np.clip(block, -1.0, 1.0) * 32767.0).round().astype(np.int16)
            frame = av.AudioFrame.from_ndarray(pcm.T.reshape(1, -1), format="s16", layout=self.pump.layout)
        else:
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=self.pump.layout)
        frame.sample_rate = self.pump.rate
        frame.pts = self.written
        frame.time_base = Fraction(1, self.pump.rate)
        return frame

    def fill_to(self, target: int, container: av.container.OutputContainer, final: bool = False) -> None:
        """Encode whole codec frames up to ``target`` samples; with ``final`` also the short tail."""
        while self.written + self.frame_size <= target or (final and self.written < target):
            count = min(self.frame_size, target - self.written)
            frame = self._frame(self.pump.read(count))
            self.written += count
            container.mux(self.stream.encode(frame))
        if final:
            container.mux(self.stream.encode(None))
