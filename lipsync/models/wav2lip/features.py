"""Wav2Lip's audio features: the mel spectrogram of a voice, one 16-column window per frame.

``MelFeatures`` is the ``AudioFeatures`` of the Wav2Lip family (see ``lipsync.models.base``):
the spectrogram is computed once for the whole voice (80 bands × 80 columns a second, about
90 MB for two hours); each frame's window (80, 16) = 200 ms is cut from it on demand, so a
job over frames [a, b) takes exactly the windows a whole run takes there.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import numpy.typing as npt

from . import mel as audio_mod

__all__ = ["MelFeatures"]

F32 = npt.NDArray[np.float32]


class MelFeatures:
    """The mel spectrogram (80, columns) of a 16 kHz voice of ``num_samples_16k`` samples."""

    def __init__(self, mel: F32, num_samples_16k: int) -> None:
        self.mel = mel
        self.num_samples_16k = int(num_samples_16k)
        self._reference: tuple[Fraction, F32] | None = None

    @classmethod
    def from_wav16k(cls, wav16k: F32) -> MelFeatures:
        """Features of float32 mono samples at 16 kHz."""
        return cls(audio_mod.melspectrogram(wav16k), len(wav16k))

    def frame_count(self, fps: Fraction) -> int:
        """ceil(duration × fps), at least 1: every frame the voice reaches gets a window."""
        return audio_mod.frame_count_for_audio(self.num_samples_16k, fps)

    def reference_frame_count(self, fps: Fraction) -> int:
        """The original ``inference.py``'s count (it drops the last 3–4 frames)."""
        return len(self._reference_windows(fps))

    def _reference_windows(self, fps: Fraction) -> F32:
        if self._reference is None or self._reference[0] != fps:
            self._reference = (fps, audio_mod.mel_windows(self.mel, fps, 0, reference=True))
        return self._reference[1]

    def windows(self, fps: Fraction, first_frame: int, count: int, *, offset_ms: float = 0.0,
                reference: bool = False) -> F32:
        """float32 (count, 80, 16): the windows of frames first_frame … first_frame+count-1.

        ``reference``: the original's windows (``offset_ms`` does not apply), else the product's
        exact rule with the audio's end padded with silence (``lipsync.models.wav2lip.mel.mel_windows``)."""
        if reference:
            return self._reference_windows(fps)[first_frame : first_frame + count]
        return audio_mod.mel_windows(self.mel, fps, count, offset_ms=offset_ms, first_frame=first_frame)
