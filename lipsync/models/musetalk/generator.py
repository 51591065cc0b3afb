"""MuseTalk 1.5 behind the ``Generator`` interface: VAE encode → one UNet pass → VAE decode.

Per frame, exactly as the original's v1.5 inference (``scripts/inference.py``):

1. The 256² BGR crop → RGB, /255, channels first; a copy with rows 128-255 zeroed; both
   normalised to [-1, 1]; each VAE-encoded; latent = 0.18215 × posterior **mean** (the original
   draws ``mean + std·noise``, unseeded, so two of its runs differ; MuseTalk's training uses the
   mean, and so does this product, so runs are reproducible).
2. UNet(cat(masked, reference) latents, timestep 0, audio prompt + positional encoding).
3. VAE-decode ÷ 0.18215, (x/2 + 0.5) clipped to [0, 1], ×255, rounded, RGB → BGR.

``generate`` returns the decoded faces already rounded to 8 bits (value/255 as float32), so
``to_uint8_reference`` gives back exactly the original ``decode_latents`` bytes (the round trip
k/255·255 → k is exact). Nothing finer is lost: the frames that receive the faces are 8-bit.

Source frames repeat (the original cycles a short video forward then backward; a prepared avatar
re-uses its frames): latents are cached by a hash of the crop's bytes, so a crop is encoded once.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ...errors import InputError
from ..base import CropSpec
from ..wav2lip.generator import resolve_device
from .audio import HIDDEN_SIZE, WhisperAudio, pe_table
from .loading import MuseTalkParts, check_parts, find_parts, load_unet, load_vae, load_whisper

__all__ = ["MUSETALK_CROP", "MUSETALK_LICENCE", "MuseTalkGenerator", "load_musetalk"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

MUSETALK_CROP = CropSpec(size=256, bottom_margin=10, masked_from=0.5, interpolation="lanczos")
MUSETALK_LICENCE = (
    "MuseTalk 1.5 weights: the authors release them for any purpose, including commercial use (MuseTalk "
    "README, 'Disclaimer/License'); the VAE (stabilityai/sd-vae-ft-mse, MIT per its model card) and "
    "whisper-tiny (openai/whisper-tiny, Apache-2.0 per its model card) are permissively licensed."
)
DEFAULT_LATENT_CACHE = 2048
"""Crops whose latents are kept, on the model's device (8×32×32 values each: 32 KB in float32,
64 MB in all; half in fp16): a looped or ping-ponged clip of up to 2048 frames (82 s at 25 fps)
is VAE-encoded once, a still image once in all."""

_DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
           "half": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


def _dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise InputError(f"dtype {dtype} is not offered for MuseTalk; use float32, float16 or bfloat16.")
        return dtype
    try:
        return _DTYPES[dtype.strip().lower()]
    except KeyError:
        raise InputError(f"Unknown dtype {dtype!r}: use fp32, fp16 or bf16.") from None


def _whole(run: Any, items: Any) -> Any:
    """``run(items)`` in one call (the original's batching)."""
    return run(items)


def _move(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """``module.to(device, dtype)`` as torch does it: diffusers' own ``to`` logs a warning about
    float32 modules on every cast with a dtype, even when there are none (these models have none)."""
    torch.nn.Module.to(module, device, dtype)


class MuseTalkGenerator:
    """MuseTalk 1.5 (UNet + sd-vae-ft-mse + whisper-tiny encoder) as a ``Generator``.

    The three modules sit on one device in one dtype; ``load_musetalk`` builds this from files.
    """

    family = "musetalk"
    licence = MUSETALK_LICENCE
    crop = MUSETALK_CROP

    def __init__(self, unet: torch.nn.Module, vae: torch.nn.Module, whisper_encoder: torch.nn.Module,
                 feature_extractor: Any, *, scaling_factor: float = 0.18215, name: str = "musetalkV15",
                 latent_cache: int = DEFAULT_LATENT_CACHE) -> None:
        self.unet = unet
        self.vae = vae
        self.whisper_encoder = whisper_encoder
        self.feature_extractor = feature_extractor
        self.scaling_factor = float(scaling_factor)
        self.name = name
        self._latents: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._latent_cache = max(0, int(latent_cache))
        self._lock = threading.Lock()
        self.encoded_crops = 0
        """How many crops went through the VAE encoder (cache hits do not count)."""
        self._pe = torch.from_numpy(pe_table())

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def to(self, device: torch.device | str, dtype: torch.dtype | str | None = None) -> MuseTalkGenerator:
        """Move the three modules (and drop cached latents, which live on the old device)."""
        dev, dt = torch.device(device), _dtype(dtype) if dtype is not None else self.dtype
        for module in (self.unet, self.vae, self.whisper_encoder):
            _move(module, dev, dt)
        with self._lock:
            self._latents.clear()
        return self

    # ---- audio ---------------------------------------------------------------------------------

    def prepare_audio(self, wav16k: F32) -> WhisperAudio:
        """The voice's audio prompts, computed window by window as they are asked for."""
        return WhisperAudio(wav16k, self.whisper_encoder, self.feature_extractor)

    # ---- faces ---------------------------------------------------------------------------------

    def vae_input(self, crops_bgr: U8, masked: bool) -> torch.Tensor:
        """The VAE's input for (B, 256, 256, 3) BGR crops: RGB in [-1, 1], (B, 3, 256, 256), the
        rows from ``crop.masked_from`` down set to -1 when ``masked``."""
        # Contiguous NCHW, as the original's copy makes it: a channels-last view would send the
        # VAE's GroupNorms through torch's channels-last CPU kernel, which is less precise (1e-3
        # relative on these inputs, and its results depend on the batch).
        x = torch.from_numpy((crops_bgr[..., ::-1] / 255.0).astype(np.float32)).permute(0, 3, 1, 2).contiguous()
        if masked:
            x = x.clone()
            x[:, :, int(round(x.shape[2] * self.crop.masked_from)):, :] = 0
        return (x - 0.5) / 0.5

    def _vae_encode(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            dist = self.vae.encode(x.to(self.device, self.dtype)).latent_dist
            return self.scaling_factor * dist.mean

    def encode_crops(self, crops_bgr: U8) -> torch.Tensor:
        """UNet input latents for each crop: cat(masked, reference) (B, 8, 32, 32) on the device,
        each distinct crop encoded once (cached by the hash of its bytes)."""
        crops = np.ascontiguousarray(crops_bgr)
        keys = [hashlib.blake2b(c.tobytes(), digest_size=16).digest() for c in crops]
        with self._lock:
            found = {k: self._latents[k] for k in keys if k in self._latents}
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        if todo:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            batch = crops[[first[k] for k in todo]]
            both = self._per_call(lambda b: torch.cat([self._vae_encode(self.vae_input(b, True)),
                                                       self._vae_encode(self.vae_input(b, False))], 1), batch)
            self.encoded_crops += len(todo)
            fresh = dict(zip(todo, both))
            found.update(fresh)
            with self._lock:
                self._latents.update(fresh)
                while len(self._latents) > self._latent_cache:
                    self._latents.popitem(last=False)
        return torch.stack([found[k] for k in keys])

    def unet_forward(self, latents: torch.Tensor, features: np.ndarray) -> torch.Tensor:
        """Predicted latents (B, 4, 32, 32) from UNet input latents and audio prompts (B, 50, 384)
        without positional encoding (it is added here, as the original's ``pe`` does)."""
        prompts = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)) + self._pe
        timestep = torch.tensor([0], device=self.device)
        with torch.inference_mode():
            out = self.unet(latents.to(self.device, self.dtype), timestep,
                            encoder_hidden_states=prompts.to(self.device, self.dtype))
        return out.sample

    def decode_latents(self, latents: torch.Tensor) -> U8:
        """The original's ``decode_latents``: (B, 256, 256, 3) uint8 BGR faces."""
        with torch.inference_mode():
            image = self.vae.decode((1 / self.scaling_factor) * latents.to(self.device, self.dtype)).sample
            image = (image / 2 + 0.5).clamp(0, 1)
        pixels = image.permute(0, 2, 3, 1).float().cpu().numpy()
        return np.ascontiguousarray((pixels * 255).round().astype(np.uint8)[..., ::-1])

    def _per_call(self, run: Any, items: Any) -> Any:
        """``run(items)``, split into single items on the CPU.

        Why: torch's CPU kernels round differently for different batch sizes (1e-5 relative in
        the VAE and UNet here), enough to move ~0.2 % of the decoded pixels by one level. One frame
        per call keeps a frame's face independent of how frames were batched, at little cost on a
        CPU (the 256² VAE fills the cores with one image). On a GPU whole batches run, for speed.
        """
        if self.device.type != "cpu" or len(items) <= 1:
            return run(items)
        return torch.cat([run(items[i:i + 1]) for i in range(len(items))])

    def generate(self, crops_bgr: U8, features: np.ndarray, batch_size: int, *, reference: bool = False) -> F32:
        """Faces (B, 3, 256, 256) float32 BGR in [0, 1] (8-bit values / 255) for (B, 256, 256, 3)
        uint8 BGR crops and (B, 50, 384) audio prompts from ``WhisperAudio.windows``.

        On the CPU a frame's face never depends on ``batch_size`` (see ``_per_call``); on a GPU,
        the device's kernels may round a batch differently, by at most a level in rare pixels.
        ``reference``: the UNet and the decoder take each batch of ``batch_size`` in one call, as
        the original's inference.py (its ``batch_size`` 8; crops are encoded one by one in both),
        so a CPU gives its bytes exactly when the batches start where the original's do (frames
        0, 8, 16, … of the output)."""
        size = self.crop.size
        if crops_bgr.ndim != 4 or crops_bgr.shape[1:] != (size, size, 3) or crops_bgr.dtype != np.uint8:
            raise InputError(f"MuseTalk takes (B, {size}, {size}, 3) uint8 crops; got {crops_bgr.shape} {crops_bgr.dtype}.")
        if features.shape[1:] != (50, HIDDEN_SIZE) or len(features) != len(crops_bgr):
            raise InputError(f"MuseTalk takes one (50, {HIDDEN_SIZE}) audio prompt per crop; got {features.shape} "
                             f"for {len(crops_bgr)} crops.")
        step = max(1, int(batch_size))
        out = np.empty((len(crops_bgr), 3, size, size), np.float32)
        for lo in range(0, len(crops_bgr), step):
            hi = min(lo + step, len(crops_bgr))
            latents = self.encode_crops(crops_bgr[lo:hi])
            index = torch.arange(hi - lo)
            per_call = _whole if reference else self._per_call
            pred = per_call(lambda i: self.unet_forward(latents[i], features[lo:hi][i.numpy()]), index)
            faces = per_call(lambda i: torch.from_numpy(self.decode_latents(pred[i])), index).numpy()
            out[lo:hi] = faces.transpose(0, 3, 1, 2) / np.float32(255)
        return out

    def to_uint8_reference(self, faces: F32) -> U8:
        """(B, 3, S, S) faces as (B, S, S, 3) uint8 BGR: exactly the original's decoded bytes for
        faces from ``generate``."""
        return np.ascontiguousarray(np.rint(np.clip(faces, 0, 1) * 255).astype(np.uint8).transpose(0, 2, 3, 1))

    def memory_estimate(self, batch_size: int) -> int:
        """Weights plus an estimate of one batch's peak activations (the VAE at 256² dominates:
        a few full-resolution maps of its second-widest stage per image), in bytes."""
        modules = (self.unet, self.vae, self.whisper_encoder)
        weights = sum(p.numel() * p.element_size() for m in modules for p in m.parameters())
        widths = list(self.vae.config.block_out_channels)
        itemsize = torch.tensor([], dtype=self.dtype).element_size()
        per_image = 8 * widths[min(1, len(widths) - 1)] * self.crop.size ** 2 * itemsize
        whisper_segment = 3000 * 80 * 4 + 1500 * HIDDEN_SIZE * 12 * itemsize
        return int(weights + max(1, int(batch_size)) * per_image + whisper_segment)


def load_musetalk(models_dir_or_parts: str | os.PathLike[str] | MuseTalkParts, device: str | torch.device = "auto",
                  dtype: torch.dtype | str | None = None) -> MuseTalkGenerator:
    """MuseTalk 1.5 from a models folder (MuseTalk's layout, see ``loading``) or explicit parts.

    ``dtype``: float32 by default; float16 / bfloat16 are for GPUs (float16 on the CPU is refused:
    it has no fast half-precision convolutions).
    """
    if isinstance(models_dir_or_parts, MuseTalkParts):
        parts = models_dir_or_parts
        check_parts(parts)
    else:
        parts = find_parts(models_dir_or_parts)
    dev = resolve_device(device)
    dt = _dtype(dtype)
    if dt == torch.float16 and dev.type == "cpu":
        raise InputError("float16 needs a GPU (cuda or mps); on the CPU use float32.")
    unet = load_unet(parts)
    vae, scaling = load_vae(parts.vae_dir)
    encoder, extractor = load_whisper(parts.whisper_dir)
    for module in (unet, vae, encoder):
        _move(module, dev, dt)
    return MuseTalkGenerator(unet, vae, encoder, extractor, scaling_factor=scaling, name=parts.unet.parent.name)
