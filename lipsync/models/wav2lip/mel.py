"""Wav2Lip's mel spectrogram and the window of each video frame, exactly as the original computes them.

The pipeline reproduces the original Wav2Lip ``audio.py`` (librosa 0.7 era) exactly, because
the published weights were trained on those features: a different padding mode or mel basis
would silently degrade the sync. It is computed in chunks of STFT frames so that hours of audio
never build the full complex STFT matrix.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from ...errors import AudioError
from ...media.audio import MODEL_RATE, check_finite
from ...media.formats import frame_rate

__all__ = [  # noqa: RUF022 - grouped by stage
    "SILENCE", "mel_basis", "melspectrogram", "window_starts", "mel_windows", "reference_frame_count",
    "frame_count_for_audio",
]

SILENCE = -4.0
"""The normalised mel value of digital silence (the floor of the [-4, 4] range)."""

N_FFT, HOP, N_MELS, WINDOW_COLS = 800, 200, 80, 16
_CHUNK_FRAMES = 4096  # STFT frames per chunk: ~26 MB of complex128 at a time
_HANN = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)
"""Periodic Hann, = scipy ``get_window('hann', 800, fftbins=True)`` (librosa's default)."""

FloatArray = npt.NDArray[np.float32]


# --- mel spectrogram

def _hz_to_mel(f: float) -> float:
    """Slaney mel scale (librosa's default, htk=False) for a scalar."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    if f >= min_log_hz:
        return min_log_hz / f_sp + float(np.log(f / min_log_hz)) / (np.log(6.4) / 27.0)
    return (f - 0.0) / f_sp


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of the Slaney mel scale, vectorised the way librosa does it."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    freqs = f_sp * mels
    log_t = mels >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (mels[log_t] - min_log_mel))
    return freqs


@lru_cache(maxsize=1)
def mel_basis() -> FloatArray:
    """``librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)`` (Slaney norm),
    re-implemented step for step so that importing librosa (seconds) is never needed."""
    fftfreqs = np.fft.rfftfreq(n=N_FFT, d=1.0 / MODEL_RATE)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(55.0), _hz_to_mel(7600.0), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((N_MELS, N_FFT // 2 + 1), dtype=np.float32)
    for i in range(N_MELS):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2 : N_MELS + 2] - mel_f[:N_MELS]))[:, np.newaxis]
    weights.setflags(write=False)
    return weights


def _reflect_index(p: np.ndarray, n: int) -> np.ndarray:
    """Index into the original signal of position ``p`` of ``np.pad(x, N_FFT//2, 'reflect')``."""
    if n == 1:
        return np.zeros_like(p)
    period = 2 * (n - 1)
    m = np.mod(p - N_FFT // 2, period)
    return np.where(m >= n, period - m, m)


def _mel_chunk(x: np.ndarray, f0: int, f1: int) -> np.ndarray:
    """Normalised mel columns ``f0:f1``, from the 800 pre-emphasised samples each frame needs.

    Pre-emphasis ``y[n] = x[n] - 0.97 x[n-1]`` (y[0] = x[0]) is what ``lfilter([1, -0.97], [1])``
    computes, evaluated in float64 only on the samples this chunk touches.
    """
    lo, hi = f0 * HOP - N_FFT // 2, (f1 - 1) * HOP + N_FFT // 2  # original sample range
    if lo >= 1 and hi <= x.shape[0]:  # interior chunk: a plain slice, no padding involved
        s = x[lo - 1 : hi].astype(np.float64)
        seg = s[1:] - 0.97 * s[:-1]
    else:
        padded = np.arange(f0 * HOP, (f1 - 1) * HOP + N_FFT, dtype=np.int64)
        idx = _reflect_index(padded, x.shape[0])
        cur = x[idx].astype(np.float64)
        prev = x[np.maximum(idx - 1, 0)].astype(np.float64)
        seg = np.where(idx > 0, cur - 0.97 * prev, cur)
    frames = np.lib.stride_tricks.sliding_window_view(seg, N_FFT)[::HOP]
    mag = np.abs(np.fft.rfft(frames * _HANN, axis=1))
    mel = mel_basis() @ mag.T
    db = 20.0 * np.log10(np.maximum(1e-5, mel)) - 20.0
    return np.clip(8.0 * ((db + 100.0) / 100.0) - 4.0, -4.0, 4.0)


def melspectrogram(wav16k: np.ndarray, *, chunk_frames: int = _CHUNK_FRAMES) -> FloatArray:
    """Wav2Lip's normalised log-mel spectrogram, float32 (80, 1 + len(wav) // 200).

    Equal to the original ``audio.melspectrogram`` (librosa 0.7: centred STFT with *reflect*
    padding, periodic Hann, Slaney mel 55-7600 Hz, -20 dB reference, [-4, 4] range), computed
    ``chunk_frames`` STFT frames at a time so memory stays bounded for long audio.
    """
    x = np.asarray(wav16k)
    if x.ndim != 1:
        raise ValueError(f"melspectrogram expects mono 16 kHz samples (1-D), got shape {x.shape}")
    if x.size == 0:
        raise AudioError("The audio is empty (0 samples); give at least one sample.")
    check_finite(x, "The audio")
    n_cols = 1 + x.shape[0] // HOP
    out = np.empty((N_MELS, n_cols), dtype=np.float32)
    step = max(1, int(chunk_frames))
    for f0 in range(0, n_cols, step):
        f1 = min(n_cols, f0 + step)
        out[:, f0:f1] = _mel_chunk(x, f0, f1)
    return out


# --- windows per frame

def window_starts(
    n_frames: int, fps: Fraction | float, *, offset_ms: float = 0.0, first_frame: int = 0
) -> npt.NDArray[np.int64]:
    """First mel column of frames ``first_frame .. first_frame + n_frames - 1``, exactly.

    ``start_i = floor((i - offset_ms * fps / 1000) * 80 / fps) = floor(80 i / fps - offset_cols)``
    in integer arithmetic: no float rounding, no wrap after hours of audio (offset_ms is taken
    to the microsecond).
    """
    f = frame_rate(fps)
    off = Fraction(offset_ms).limit_denominator(1000) * Fraction(2, 25)  # mel columns
    p, q, a, b = f.numerator, f.denominator, off.numerator, off.denominator
    last = first_frame + max(n_frames, 0)
    biggest = max(80 * q * max(abs(first_frame), abs(last)), p) * b + abs(a) * p
    if biggest < 2**62:  # the int64 path cannot overflow
        i = np.arange(first_frame, last, dtype=np.int64)
        k, r = np.divmod(80 * q * i, p)
        return k + (r * b - a * p) // (p * b)
    starts = [((80 * q * i * b) - a * p) // (p * b) for i in range(first_frame, last)]
    return np.asarray(starts, dtype=np.int64)


def reference_frame_count(n_cols: int, fps: Fraction | float) -> int:
    """How many windows the original ``inference.py`` loop yields for ``n_cols`` mel columns."""
    if n_cols < WINDOW_COLS:
        return 1
    mult = 80.0 / float(fps)
    limit = n_cols - WINDOW_COLS
    i = np.arange(int((limit + 1) / mult) + 2, dtype=np.float64)
    return int(np.count_nonzero((i * mult).astype(np.int64) <= limit)) + 1


def _reference_windows(mel: FloatArray, fps: Fraction | float) -> FloatArray:
    """The original loop, vectorised: windows at int(i * 80 / fps), then the last 16 columns."""
    n_cols = mel.shape[1]
    if n_cols < WINDOW_COLS:
        raise AudioError(
            f"The audio is too short for reference mode ({n_cols} mel columns, needs "
            f"{WINDOW_COLS}, about 0.2 s); use the default mode or longer audio."
        )
    count = reference_frame_count(n_cols, fps)
    starts = (np.arange(count - 1, dtype=np.float64) * (80.0 / float(fps))).astype(np.int64)
    starts = np.append(starts, n_cols - WINDOW_COLS)
    cols = starts[:, None] + np.arange(WINDOW_COLS, dtype=np.int64)
    return np.ascontiguousarray(mel[:, cols].transpose(1, 0, 2), dtype=np.float32)


def mel_windows(
    mel: FloatArray,
    fps: Fraction | float,
    n_frames: int,
    *,
    offset_ms: float = 0.0,
    reference: bool = False,
    first_frame: int = 0,
) -> FloatArray:
    """The (N, 80, 16) mel window of each video frame.

    Default mode: frame i starts at ``window_starts`` and columns outside the spectrogram are
    SILENCE, so every frame gets a window (the tail of the audio is padded, never dropped). A
    positive ``offset_ms`` makes frame i use earlier audio, i.e. the mouth moves *later* than the
    sound (it delays the mouth); a negative one makes the mouth lead. ``first_frame`` lets a
    caller build windows batch by batch for long videos.

    ``reference=True`` replicates the original ``inference.py`` exactly and ignores
    ``n_frames``/``offset_ms``/``first_frame``: the caller takes the frame count from the result.
    """
    mel = np.asarray(mel, dtype=np.float32)
    if reference:
        return _reference_windows(mel, fps)
    starts = window_starts(n_frames, fps, offset_ms=offset_ms, first_frame=first_frame)
    n_cols = mel.shape[1]
    if len(starts) == 0:
        return np.empty((0, N_MELS, WINDOW_COLS), dtype=np.float32)
    # Clamp windows lying wholly outside to just outside, then pad the mel with SILENCE once:
    # every window becomes a plain slice of the padded mel (int64 indices throughout).
    starts = np.clip(starts, -WINDOW_COLS, n_cols)
    left = int(max(0, -starts.min()))
    right = int(max(0, starts.max() + WINDOW_COLS - n_cols))
    padded = np.pad(mel, ((0, 0), (left, right)), constant_values=np.float32(SILENCE))
    view = np.lib.stride_tricks.sliding_window_view(padded, WINDOW_COLS, axis=1)
    return np.ascontiguousarray(view[:, starts + left].transpose(1, 0, 2), dtype=np.float32)


def frame_count_for_audio(num_samples_16k: int, fps: Fraction | float) -> int:
    """Video frames needed to cover the whole audio: ceil(duration * fps), exactly, at least 1."""
    frames = Fraction(int(num_samples_16k), MODEL_RATE) * frame_rate(fps)
    return max(1, math.ceil(frames))
