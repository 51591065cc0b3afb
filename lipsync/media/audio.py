"""Audio in: decode any file on its own timeline, normalise arrays to a ``Waveform``, resample to
the models' 16 kHz mono.

Each model family turns the 16 kHz voice into its own features (Wav2Lip's mel spectrogram:
``lipsync.models.wav2lip.mel``).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _audio_timeline
from ..errors import AudioError
from ..types import Waveform

__all__ = ["MODEL_RATE", "PlacedAudio", "describe_placement", "load_audio", "to_model_rate", "waveform_from_array"]

log = logging.getLogger(__name__)

MODEL_RATE = 16000
_MAX_ARRAY_CHANNELS = 64

FloatArray = npt.NDArray[np.float32]


# --- decoding files

def _check_file(path: str) -> None:
    """Fail early with a readable message for the file-system problems users actually hit."""
    if not os.path.exists(path):
        raise AudioError(f"Audio file '{path}' was not found; check the path and try again.")
    if os.path.isdir(path):
        raise AudioError(f"Audio path '{path}' is a folder; give the audio file itself.")
    if os.path.getsize(path) == 0:
        raise AudioError(f"Audio file '{path}' is empty (0 bytes); re-export or re-download it.")


_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


def _frame_to_float(frame: Any) -> FloatArray:
    """One decoded frame as float32 (channels, samples); integer PCM is scaled by its full range.

    Converting here (rather than with an FFmpeg resampler) is exact for 8/16-bit input, keeps
    unusual channel layouts working and never buffers or shifts samples.
    """
    fmt, channels = frame.format, len(frame.layout.channels)
    if fmt.is_planar and channels > _AVFRAME_PLANES:
        return _packed_float(frame, channels)
    data = np.asarray(frame.to_ndarray())
    data = data.reshape(channels, -1) if fmt.is_planar else data.reshape(-1, channels).T
    base = fmt.name.rstrip("p") if fmt.is_planar else fmt.name
    if base in ("flt", "dbl"):
        return data.astype(np.float32, copy=False)
    scale = _INT_SCALE[base]  # FFmpeg has no other sample formats
    out = data.astype(np.float64) - (128.0 if base == "u8" else 0.0)
    return (out / scale).astype(np.float32)


_AVFRAME_PLANES = 8
"""PyAV reads a planar frame's planes from AVFrame.data[0..7] only: with more channels (16-channel
ambisonic Opus, a damaged AAC header claiming 30) ``to_ndarray`` reads past it and crashes."""


def _packed_float(frame: Any, channels: int) -> FloatArray:
    """A planar frame of many channels as float32 (channels, samples), through one packed plane.

    Only the sample format changes (same rate and layout), so FFmpeg's converter neither
    buffers nor shifts samples; a fresh converter per frame keeps it that way.
    """
    import av

    converter = av.AudioResampler(format="flt", layout=frame.layout, rate=frame.sample_rate)
    blocks = [out.to_ndarray().reshape(-1, channels).T for out in converter.resample(frame) + converter.resample(None)]
    if not blocks:
        return np.zeros((channels, 0), np.float32)
    return np.ascontiguousarray(np.concatenate(blocks, axis=1), dtype=np.float32)


def _match_block(block: FloatArray, rate: int, channels: int, want_rate: int) -> FloatArray:
    """Bring a frame whose rate/channel count changed mid-stream in line with the first frame."""
    if block.shape[0] != channels:
        block = np.repeat(block.mean(axis=0, keepdims=True), channels, axis=0)
    if rate != want_rate:
        import soxr

        block = soxr.resample(block.T, rate, want_rate, quality="HQ").T
    return np.ascontiguousarray(block, dtype=np.float32)


def _decoded(container: Any, stream: Any, path: str) -> Iterator[tuple[FloatArray, int, float | None]]:
    """(samples, rate, presentation time in s or None) of every frame of one audio stream,
    skipping packets FFmpeg reports as damaged."""
    import av

    skipped, found = 0, False
    last_error = ""
    tick = float(stream.time_base) if stream.time_base else 0.0  # frames share the stream's time base
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                skipped, last_error = skipped + 1, f" ({exc})"
                continue
            for frame in frames:
                block = _frame_to_float(frame)
                if block.shape[1]:
                    found = True
                    time = frame.pts * tick if frame.pts is not None and tick else None
                    yield block, int(frame.sample_rate), time
    except av.FFmpegError as exc:
        if not found:
            raise AudioError(
                f"Audio file '{path}' could not be decoded ({exc}); it may be corrupt or "
                "truncated: re-export it (e.g. as WAV) and try again."
            ) from exc
        log.warning("%s: decoding stopped early (%s); using the audio read so far.", path, exc)
    if skipped:
        log.warning("%s: skipped %d damaged audio packet(s).", path, skipped)
    if not found:
        raise AudioError(
            f"Audio file '{path}' decoded to zero samples{last_error}; it is empty, corrupt or "
            "in a codec this FFmpeg cannot decode: re-export it (e.g. as WAV) and try again."
        )


def _open(name: str) -> Any:
    import av

    _check_file(name)
    try:
        return av.open(name, mode="r", metadata_errors="ignore")
    except PermissionError as exc:
        raise AudioError(f"Audio file '{name}' cannot be read (permission denied).") from exc
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise AudioError(
            f"File '{name}' is not an audio or video file FFmpeg can read, or it is corrupt; "
            "convert it to WAV or MP3 and try again."
        ) from exc


class PlacedAudio:
    """The first audio track of a file, decoded as it is read and placed on the file's timeline.

    0 s is the first video frame (for a file without video, the first audio sample): silence
    before a track that starts late and in holes, audio before the first frame cut, the padding
    an MP4/MOV/M4A edit list declares cut (``lipsync.media._audio_timeline``). ``blocks()``
    yields float32 (channels, n) blocks at ``sample_rate`` with ``channels`` (those of the first
    frame; later frames that differ are converted); ``placement`` says what was done, complete
    once ``blocks()`` is exhausted. The file stays open until ``close()`` (or the ``with`` ends).
    The first frame is decoded on opening, so an undecodable file fails here with an
    ``AudioError`` naming it and what to do.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._container = _open(self.path)
        try:
            if not self._container.streams.audio:
                raise AudioError(
                    f"File '{self.path}' has no audio track; give a file that contains sound "
                    "(or add an audio track to it)."
                )
            stream = self._container.streams.audio[0]
            self._frames = _decoded(self._container, stream, self.path)
            self._first = next(self._frames)
        except BaseException:
            self._container.close()
            raise
        block, rate, _ = self._first
        self.sample_rate, self.channels = rate, int(block.shape[0])
        tick = float(stream.time_base) if stream.time_base else 0.0
        self._placer = _audio_timeline.Placer(
            rate, self.channels, _audio_timeline.clock_origin(self._container, stream),
            _audio_timeline.declared_end(self._container, stream), tick,
        )

    @property
    def placement(self) -> _audio_timeline.Placement:
        return self._placer.placement

    def blocks(self) -> Iterator[FloatArray]:
        """The placed samples, block by block (call once)."""
        first, self._first = self._first, None
        if first is None:
            return
        for block, rate, time in itertools.chain([first], self._frames):
            if (rate, block.shape[0]) != (self.sample_rate, self.channels):
                block = _match_block(block, rate, self.channels, self.sample_rate)
            yield from self._placer.place(block, time)

    def close(self) -> None:
        self._frames.close()
        self._container.close()

    def __enter__(self) -> PlacedAudio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_placement(placement: _audio_timeline.Placement) -> list[str]:
    """Sentences for the user about what placing a track did (empty when it played as decoded)."""
    notes = []
    if placement.start is not None and abs(placement.start) >= 0.0005:
        what = "silence before it" if placement.start > 0 else "the audio before the first frame cut"
        notes.append(f"the audio starts {placement.start:+.3f} s from the first video frame ({what})")
    for at, length in placement.gaps:
        notes.append(f"a {length:.3f} s hole in the audio at {at:.3f} s was filled with silence")
    if placement.resets:
        notes.append(f"{placement.resets} broken audio timestamp(s) (a jump of over a minute, or back over a second) "
                     "were ignored: the sound there follows on without a gap")
    if placement.trimmed >= 0.0005:
        notes.append(f"{placement.trimmed:.3f} s of codec padding after the declared end was cut")
    return notes


def load_audio(path: str | os.PathLike[str]) -> Waveform:
    """Decode the first audio stream of any file FFmpeg reads (audio or video) at its own rate,
    placed on the file's timeline as players do (see ``PlacedAudio``): sample 0 plays with the
    first video frame (a file without video: its first audio sample).

    All channels are kept as float32 (channels, samples), nominally in [-1, 1]. Lossy codecs
    may overshoot full scale slightly; such samples are kept, not clipped, so nothing is lost.
    Every failure is an ``AudioError`` naming the file and what to do.
    """
    name = os.fspath(path)
    with PlacedAudio(name) as placed:
        blocks = list(placed.blocks())
        rate = placed.sample_rate
        notes = tuple(describe_placement(placed.placement))
        for note in notes:
            log.info("%s: %s.", name, note)
    if not blocks:
        raise AudioError(
            f"Audio file '{name}' has no sound after its first video frame; give a file whose sound "
            "overlaps its picture."
        )
    samples = np.ascontiguousarray(np.concatenate(blocks, axis=1))
    check_finite(samples, f"Audio file '{name}'")
    return Waveform(samples=samples, sample_rate=rate, source=name, notes=notes)


# --- arrays

def check_finite(x: np.ndarray, what: str) -> None:
    """NaN/inf would silently turn the whole mel spectrogram (and the mouth) into garbage."""
    if not np.isfinite(x).all():
        raise AudioError(f"{what} contains NaN or infinite samples; clean or regenerate it.")


def _as_numpy(samples: Any) -> np.ndarray:
    """Plain numpy from numpy or torch-like input, without importing torch."""
    if not hasattr(samples, "detach"):
        return np.asarray(samples)
    tensor = samples.detach().cpu()
    try:
        return np.asarray(tensor.numpy())
    except TypeError:  # bfloat16 and friends have no numpy dtype
        return np.asarray(tensor.float().numpy())


def _to_float32(arr: np.ndarray, source: str) -> FloatArray:
    """Floats pass through; integer PCM is scaled by its full range (uint8 is offset-binary)."""
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    if arr.dtype.kind in "iu":
        offset = 128.0 if arr.dtype == np.uint8 else 0.0
        scale = float(2 ** (arr.dtype.itemsize * 8 - 1))
        return ((arr.astype(np.float64) - offset) / scale).astype(np.float32)
    raise AudioError(f"Audio {source} has dtype {arr.dtype}; give float or integer samples.")


def _check_rate(sample_rate: Any, source: str) -> int:
    """Accept any integral positive rate (int, numpy int, 44100.0) and reject the rest."""
    numeric = isinstance(sample_rate, (int, float, np.integer, np.floating))
    if numeric and not isinstance(sample_rate, bool) and sample_rate > 0:
        if float(sample_rate).is_integer():
            return int(sample_rate)
    raise AudioError(
        f"Audio {source} has sample rate {sample_rate!r}; use a positive integer (e.g. 44100)."
    )


def waveform_from_array(samples: Any, sample_rate: Any, source: str = "<array>") -> Waveform:
    """Wrap an in-memory waveform: (T,), (C, T) or ComfyUI's AUDIO layout (B, C, T).

    With B > 1 the batch items are joined one after another in time (item 0, then item 1, ...),
    because a batch of clips fed to one lip-sync job is meant to be heard in sequence.
    """
    rate = _check_rate(sample_rate, source)
    arr = _as_numpy(samples)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    elif arr.ndim == 3:
        arr = np.concatenate(list(arr), axis=1) if arr.shape[0] else arr.reshape(0, 0)
    elif arr.ndim != 2:
        raise AudioError(
            f"Audio {source} has shape {arr.shape}; expected (samples,), (channels, samples) "
            "or (batch, channels, samples)."
        )
    if arr.size == 0:
        raise AudioError(f"Audio {source} is empty (shape {arr.shape}); give at least one sample.")
    if arr.shape[0] > _MAX_ARRAY_CHANNELS and arr.shape[0] > arr.shape[1]:
        raise AudioError(
            f"Audio {source} has shape {arr.shape}, which looks like (samples, channels); "
            "transpose it to (channels, samples)."
        )
    out = np.ascontiguousarray(_to_float32(arr, source))
    check_finite(out, f"Audio {source}")
    return Waveform(samples=out, sample_rate=rate, source=source)


def to_model_rate(w: Waveform) -> FloatArray:
    """Mono float32 at 16 kHz, the rate Wav2Lip was trained on (mean down-mix, soxr HQ)."""
    x = w.samples[0] if w.channels == 1 else w.samples.mean(axis=0, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    check_finite(x, f"Audio {w.source}")
    if w.sample_rate == MODEL_RATE:
        return x
    import soxr

    return np.asarray(soxr.resample(x, w.sample_rate, MODEL_RATE, quality="HQ"), dtype=np.float32)
