"""Audio in: decode any file, normalise arrays to a ``Waveform``, resample to the models' 16 kHz mono.

Each model family turns the 16 kHz voice into its own features (Wav2Lip's mel spectrogram:
``lipsync.models.wav2lip.mel``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import AudioError
from ..types import Waveform

__all__ = ["MODEL_RATE", "load_audio", "to_model_rate", "waveform_from_array"]

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


def _decode(container: Any, stream: Any, path: str) -> tuple[FloatArray, int]:
    """Decode every frame of one audio stream, skipping packets FFmpeg reports as damaged."""
    import av

    blocks: list[FloatArray] = []
    rate = channels = skipped = 0
    last_error = ""
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                skipped, last_error = skipped + 1, f" ({exc})"
                continue
            for frame in frames:
                block = _frame_to_float(frame)
                if not rate:
                    rate, channels = int(frame.sample_rate), block.shape[0]
                elif (frame.sample_rate, block.shape[0]) != (rate, channels):
                    block = _match_block(block, int(frame.sample_rate), channels, rate)
                if block.shape[1]:
                    blocks.append(block)
    except av.FFmpegError as exc:
        if not blocks:
            raise AudioError(
                f"Audio file '{path}' could not be decoded ({exc}); it may be corrupt or "
                "truncated: re-export it (e.g. as WAV) and try again."
            ) from exc
        log.warning("%s: decoding stopped early (%s); using the audio read so far.", path, exc)
    if skipped:
        log.warning("%s: skipped %d damaged audio packet(s).", path, skipped)
    if not blocks:
        raise AudioError(
            f"Audio file '{path}' decoded to zero samples{last_error}; it is empty, corrupt or "
            "in a codec this FFmpeg cannot decode: re-export it (e.g. as WAV) and try again."
        )
    return np.ascontiguousarray(np.concatenate(blocks, axis=1)), rate


def load_audio(path: str | os.PathLike[str]) -> Waveform:
    """Decode the first audio stream of any file FFmpeg reads (audio or video) at its own rate.

    All channels are kept as float32 (channels, samples), nominally in [-1, 1]. Lossy codecs
    may overshoot full scale slightly; such samples are kept, not clipped, so nothing is lost.
    Every failure is an ``AudioError`` naming the file and what to do.
    """
    import av

    name = os.fspath(path)
    _check_file(name)
    try:
        container = av.open(name, mode="r")
    except PermissionError as exc:
        raise AudioError(f"Audio file '{name}' cannot be read (permission denied).") from exc
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise AudioError(
            f"File '{name}' is not an audio or video file FFmpeg can read, or it is corrupt; "
            "convert it to WAV or MP3 and try again."
        ) from exc
    with container:
        if not container.streams.audio:
            raise AudioError(
                f"File '{name}' has no audio track; give a file that contains sound "
                "(or add an audio track to it)."
            )
        stream = container.streams.audio[0]
        samples, rate = _decode(container, stream, name)
    check_finite(samples, f"Audio file '{name}'")
    return Waveform(samples=samples, sample_rate=rate, source=name)


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
