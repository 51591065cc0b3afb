"""Conversions between ComfyUI's values and the library's.

ComfyUI: IMAGE float32 (B, H, W, C) in [0, 1], RGB (a 4th channel is dropped); MASK float32
(B, H, W); AUDIO {"waveform": float32 (B, C, T), "sample_rate": int}.
Library: frames RGB uint8 (H, W, 3); ``Waveform`` float32 (C, T).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..lipsync.media.audio import waveform_from_array
from ..lipsync.errors import InputError
from ..lipsync.types import Frame, Waveform

__all__ = [
    "BYTES_PER_PIXEL",
    "check_images",
    "frame_at",
    "iter_frames",
    "to_audio",
    "to_waveform",
]

BYTES_PER_PIXEL = 3 * 4
"""An IMAGE pixel: three float32 channels."""


def check_images(images: Any, what: str) -> torch.Tensor:
    """``images`` as a (B, H, W, C>=3) tensor, or an InputError naming the socket."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] < 3:
        shape = tuple(getattr(images, "shape", ()))
        raise InputError(f"{what} must be an IMAGE batch (frames, height, width, 3); got shape {shape}.")
    if images.shape[0] == 0:
        raise InputError(f"{what} is an empty IMAGE batch; connect frames.")
    return images


def frame_at(images: torch.Tensor, index: int) -> Frame:
    """Frame ``index`` of an IMAGE batch as RGB uint8 (exact for images made from uint8)."""
    pixels = images[index, :, :, :3].detach().to("cpu", torch.float32)
    return pixels.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def iter_frames(images: torch.Tensor) -> Iterator[Frame]:
    """Every frame of an IMAGE batch as RGB uint8, one at a time (no second full copy)."""
    for index in range(images.shape[0]):
        yield frame_at(images, index)


def to_waveform(audio: Any, what: str = "the AUDIO input") -> Waveform:
    """A host AUDIO dict as a Waveform (a batch is joined in time)."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise InputError(
            f"{what} is not an AUDIO value (a dict with waveform and sample_rate); connect an audio output."
        )
    return waveform_from_array(audio["waveform"], audio["sample_rate"], source=what)


def to_audio(wave: Waveform) -> dict[str, Any]:
    """A Waveform as the host's AUDIO dict (batch of one)."""
    samples = torch.from_numpy(np.ascontiguousarray(wave.samples, dtype=np.float32))
    return {"waveform": samples.unsqueeze(0), "sample_rate": int(wave.sample_rate)}
