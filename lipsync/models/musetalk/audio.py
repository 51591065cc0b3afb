"""MuseTalk's audio prompts: whisper-tiny hidden states around each video frame.

What the original computes (TMElyralab/MuseTalk ``AudioProcessor``, v1.5), and what this module
reproduces:

1. The 16 kHz voice is cut into 30 s segments (480,000 samples). Each segment alone goes through
   whisper's feature extractor (zero-padded to 30 s, log-mel normalised on its own) and the
   whisper encoder; five hidden states are kept per position (the embeddings, layers 1-3, the
   final layer-normed output): (1500, 5, 384) per segment, 50 positions a second.
2. The segments' positions are concatenated and trimmed to floor(seconds · 50).
3. Zero positions pad the front (2·ceil(50/fps)) and the back, and frame i takes 10 positions
   from floor(i · 50/fps) of the padded sequence: ≈ 80 ms before to 120 ms after the frame.
   Flattened time-major, that is a (50, 384) prompt: token 5·t + l = hidden state l at t.

Differences of the product (``reference=False``), documented because they change results:

- **Exact frame rate.** The original uses ``int(fps)``: at 30000/1001 fps it reads frame i's
  audio at i/29 s while the frame is shown at i/29.97 s, 1.1 ms more lead per frame (0.33 s
  after 10 s). The product uses the exact ``Fraction`` fps: frame i's window starts at
  floor(i · 50/fps), i.e. at i/fps seconds. At an integer fps both rules are identical.
- **Whole audio.** ``frame_count`` covers the whole voice (ceil of seconds × fps, as the Wav2Lip
  family); the original makes floor(seconds × int(fps)) frames. Windows past the last audio
  position are zeros, as the original's own back padding is.
- **Bounded memory.** Segments are encoded when a window first needs them and a few are kept
  (least recently used): an hour of audio never holds all its hidden states. A segment's states
  do not depend on other segments, so windows are the same as a whole computation's, including
  those that straddle a 30 s boundary.

``windows`` returns the hidden states **without** the positional encoding; the generator adds
``pe_table`` (exactly as the original's ``PositionalEncoding``) just before the UNet.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ...errors import AudioError

__all__ = ["WhisperAudio", "pe_table"]

SAMPLE_RATE = 16000
POSITIONS_PER_SECOND = 50  # whisper: one encoder position per 20 ms
SEGMENT_SAMPLES = 30 * SAMPLE_RATE
SEGMENT_POSITIONS = 30 * POSITIONS_PER_SECOND
PADDING_LEFT = 2  # the original's audio_padding_length_left / _right
PADDING_RIGHT = 2
WINDOW_POSITIONS = 2 * (PADDING_LEFT + PADDING_RIGHT + 1)  # 10 positions = 200 ms
HIDDEN_STATES = 5
HIDDEN_SIZE = 384
DEFAULT_CACHE_SEGMENTS = 3

F32 = npt.NDArray[np.float32]


def pe_table(length: int = WINDOW_POSITIONS * HIDDEN_STATES, d_model: int = HIDDEN_SIZE) -> F32:
    """The first ``length`` rows of MuseTalk's sinusoidal ``PositionalEncoding`` (float32, the
    same torch operations, so the values are bit for bit the original's)."""
    position = torch.arange(0, length, dtype=torch.float).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * div_term)
    table[:, 1::2] = torch.cos(position * div_term)
    return table.numpy()


def _fps(fps: Fraction | float | int) -> Fraction:
    value = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1_000_000)
    if value <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return value


class WhisperAudio:
    """A voice prepared for MuseTalk (an ``AudioFeatures``): windows computed on demand.

    ``encoder`` is a transformers ``WhisperEncoder`` (run on its own device and dtype),
    ``extractor`` its ``WhisperFeatureExtractor``. At most ``cache_segments`` encoded 30 s
    segments (11.5 MB each) are kept.
    """

    def __init__(self, wav16k: npt.ArrayLike, encoder: torch.nn.Module, extractor: Any, *,
                 cache_segments: int = DEFAULT_CACHE_SEGMENTS) -> None:
        wav = np.ascontiguousarray(np.asarray(wav16k, dtype=np.float32))
        if wav.ndim != 1 or wav.size == 0:
            raise AudioError(f"MuseTalk needs mono 16 kHz samples (1-D, not empty); got shape {wav.shape}.")
        if not np.isfinite(wav).all():
            raise AudioError("The audio has NaN or infinite samples; decode it again or fix the source.")
        self._wav = wav
        self._encoder = encoder
        self._extractor = extractor
        self._cache: OrderedDict[int, F32] = OrderedDict()
        self._cache_segments = max(2, int(cache_segments))  # a window may straddle two segments
        self._lock = threading.Lock()
        self.num_samples_16k = int(wav.size)
        self.encoded_segments = 0
        """How many segment encodings ran (a segment dropped from the cache and needed again counts twice)."""
        # The original's trim: floor(len / sr * 50), in floating point as it computes it.
        self.num_positions = math.floor(self.num_samples_16k / SAMPLE_RATE * POSITIONS_PER_SECOND)

    # ---- frame counts --------------------------------------------------------------------------

    def frame_count(self, fps: Fraction | float) -> int:
        """Frames at ``fps`` covering the whole voice: ceil(seconds × fps), exactly, at least 1."""
        return max(1, math.ceil(Fraction(self.num_samples_16k, SAMPLE_RATE) * _fps(fps)))

    def reference_frame_count(self, fps: Fraction | float) -> int:
        """The original's frame count: floor(samples / 16000 × int(fps)) (it drops the end)."""
        return math.floor(self.num_samples_16k / SAMPLE_RATE * int(_fps(fps)))

    # ---- whisper, one segment at a time --------------------------------------------------------

    @property
    def num_segments(self) -> int:
        return -(-self.num_samples_16k // SEGMENT_SAMPLES)

    def input_features(self, segment: int) -> F32:
        """Whisper's log-mel of 30 s segment ``segment``: (1, 80, 3000) float32."""
        piece = self._wav[segment * SEGMENT_SAMPLES:(segment + 1) * SEGMENT_SAMPLES]
        out = self._extractor(piece, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
        return np.asarray(out, dtype=np.float32)

    def segment_states(self, segment: int) -> F32:
        """The five hidden states of segment ``segment``'s 1500 positions: (1500, 5, 384) float32."""
        if not 0 <= segment < self.num_segments:
            raise IndexError(f"segment {segment} of {self.num_segments}")
        with self._lock:
            cached = self._cache.get(segment)
            if cached is not None:
                self._cache.move_to_end(segment)
                return cached
            states = self._encode(segment)
            self._cache[segment] = states
            while len(self._cache) > self._cache_segments:
                self._cache.popitem(last=False)
            return states

    def _encode(self, segment: int) -> F32:
        param = next(self._encoder.parameters())
        features = torch.from_numpy(self.input_features(segment)).to(param.device, param.dtype)
        with torch.inference_mode():
            hidden = self._encoder(features, output_hidden_states=True).hidden_states
        self.encoded_segments += 1
        return torch.stack(hidden, dim=2)[0].float().cpu().numpy()

    @property
    def cached_segments(self) -> tuple[int, ...]:
        with self._lock:
            return tuple(self._cache)

    def positions(self, start: int, stop: int) -> F32:
        """Hidden states of positions ``start … stop-1`` (50 a second from the voice's start):
        (stop-start, 5, 384); zeros where the position is before the voice or past its end."""
        out = np.zeros((max(0, stop - start), HIDDEN_STATES, HIDDEN_SIZE), np.float32)
        lo, hi = max(start, 0), min(stop, self.num_positions)
        pos = lo
        while pos < hi:
            segment, local = divmod(pos, SEGMENT_POSITIONS)
            take = min(hi - pos, SEGMENT_POSITIONS - local)
            out[pos - start:pos - start + take] = self.segment_states(segment)[local:local + take]
            pos += take
        return out

    # ---- windows -------------------------------------------------------------------------------

    def window_starts(self, fps: Fraction | float, first_frame: int, count: int, *, offset_ms: float = 0.0,
                      reference: bool = False) -> list[int]:
        """The first position of each frame's window, counted from the voice's start (negative
        in the front padding).

        Product: floor(50 · (i/fps − offset)) − 2·ceil(50/fps) with the exact fps. Reference: the
        original's floor(i · 50/int(fps)) − 2·ceil(50/int(fps)) (floating point, as it computes
        it), shifted by ``offset_ms`` rounded to whole 20 ms positions.
        """
        rate = _fps(fps)
        frames = range(first_frame, first_frame + count)
        if reference:
            multiplier = POSITIONS_PER_SECOND / int(rate)
            pad = math.ceil(multiplier) * PADDING_LEFT
            shift = round(offset_ms * POSITIONS_PER_SECOND / 1000)
            return [math.floor(i * multiplier) - pad - shift for i in frames]
        per_frame = POSITIONS_PER_SECOND / rate
        pad = math.ceil(per_frame) * PADDING_LEFT
        offset = Fraction(offset_ms) * POSITIONS_PER_SECOND / 1000
        return [math.floor(i * per_frame - offset) - pad for i in frames]

    def windows(self, fps: Fraction | float, first_frame: int, count: int, *, offset_ms: float = 0.0,
                reference: bool = False) -> F32:
        """Audio prompts of frames ``first_frame … first_frame+count-1``: (count, 50, 384) float32
        (no positional encoding; see the module docstring)."""
        if count <= 0:
            return np.zeros((0, WINDOW_POSITIONS * HIDDEN_STATES, HIDDEN_SIZE), np.float32)
        starts = self.window_starts(fps, first_frame, count, offset_ms=offset_ms, reference=reference)
        lo, hi = min(starts), max(starts) + WINDOW_POSITIONS
        span = self.positions(lo, hi)
        out = np.empty((count, WINDOW_POSITIONS, HIDDEN_STATES, HIDDEN_SIZE), np.float32)
        for k, start in enumerate(starts):
            out[k] = span[start - lo:start - lo + WINDOW_POSITIONS]
        return out.reshape(count, WINDOW_POSITIONS * HIDDEN_STATES, HIDDEN_SIZE)
