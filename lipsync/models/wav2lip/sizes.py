"""The Wav2Lip network's input sizes, without torch (the OpenVINO path and the preprocessing
use them without loading the torch module).

A face is ``IMG_SIZE``² pixels (6 channels: masked + reference copy); a mel window is
``NUM_MELS`` bands × ``MEL_STEP`` columns (200 ms at 80 columns per second).
"""

from __future__ import annotations

__all__ = ["IMG_SIZE", "MEL_STEP", "NUM_MELS"]

IMG_SIZE = 96
NUM_MELS = 80
MEL_STEP = 16
