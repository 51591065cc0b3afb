"""Face restoration of the generated faces: GFPGAN, RestoreFormer and CodeFormer through spandrel.

Wav2Lip draws a 96×96 face; grown to a face box of a few hundred pixels it looks soft. A face
restorer redraws it sharp at its native 512×512. Models load through spandrel (what ComfyUI
itself uses for image models), which recognises the architecture from the weights:

- GFPGAN (v1.2–1.4, ``GFPGANv1.4.pth``) and RestoreFormer (``RestoreFormer.pth``): in spandrel,
  Apache-2.0 code.
- CodeFormer (``codeformer.pth``): needs ``spandrel-extra-arches``. Its code and weights are
  under the S-Lab License 1.0: **non-commercial use only**.

Files live in ``models/facerestore_models`` (the folder other ComfyUI face packs share).
Loading is safe (``lipsync.models.safe_load``, the reader the Wav2Lip weights use too):
``.safetensors`` is plain data, and ``.pth``/``.pt``/``.ckpt`` are read with torch's weights-only
unpickler (never spandrel's TorchScript path, which would run code).

``restore_faces`` takes faces as the node graph has them (RGB float (N, H, W, 3) in [0, 1], any
size), grows them to 512, runs the network, blends the result with the (grown) input by
``strength`` and returns them at ``output_size`` (default 512: the compositor shrinks them to
each face box, so the detail survives). Only the mouth mask of the compositor then takes them
into the frame: restoration never touches the eyes or anything else outside it. ``fidelity`` is
CodeFormer's ``w`` (0: sharpest, most invented; 1: closest to the input); the other two ignore it.
GFPGAN runs with its stored (fixed) noise, so the same face gives the same result and a still
head does not shimmer from frame to frame.

The restorers are trained on aligned faces (eyes and mouth at fixed places); Wav2Lip's crop is
the detector's box, so expect less than on aligned photos, especially from a small face.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .errors import DependencyError, InputError, ModelError
from .models.safe_load import load_weights, require_file

if TYPE_CHECKING:  # torch is imported where a restorer is loaded or run: a job without one never loads it
    import torch

__all__ = [
    "FACE_ARCHITECTURES",
    "RESTORE_FOLDER",
    "RESTORE_HELP",
    "RESTORE_SIZE",
    "RESTORE_SUFFIXES",
    "FaceRestorer",
    "load_restorer",
    "read_restorer_weights",
    "restore_faces",
    "restore_predictions",
    "restorer_from_state_dict",
]

F32 = npt.NDArray[np.float32]
ProgressFn = Callable[[int, int], None]

RESTORE_SIZE = 512
"""The side the restorers are trained at; faces are restored at this size."""
RESTORE_FOLDER = "facerestore_models"
RESTORE_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")
FACE_ARCHITECTURES = ("GFPGAN", "RestoreFormer", "CodeFormer")

RESTORE_HELP = (
    "Put a face restoration model in models/facerestore_models: GFPGANv1.4.pth "
    "(github.com/TencentARC/GFPGAN releases), RestoreFormer.pth (same releases) or codeformer.pth "
    "(github.com/sczhou/CodeFormer releases; needs pip install spandrel-extra-arches; "
    "non-commercial use only)."
)

_CODEFORMER_KEYS = ("position_emb", "idx_pred_layer.1.weight")


def require_spandrel() -> Any:
    """The spandrel module, or a DependencyError saying how to get it."""
    try:
        return importlib.import_module("spandrel")
    except ImportError as exc:
        raise DependencyError(
            "Face restoration needs spandrel: pip install spandrel (ComfyUI already ships it). "
            "For CodeFormer also pip install spandrel-extra-arches (non-commercial licence)."
        ) from exc


def _registry() -> Any:
    """spandrel's architectures plus the extra ones when installed, without changing spandrel's
    global registry (the host and other packs share it)."""
    spandrel = require_spandrel()
    registry = spandrel.MAIN_REGISTRY.copy()
    try:
        extra = importlib.import_module("spandrel_extra_arches")
    except ImportError:
        return registry
    registry.add(*extra.EXTRA_REGISTRY, ignore_duplicates=True)
    return registry


def _has_extra_arches() -> bool:
    return importlib.util.find_spec("spandrel_extra_arches") is not None


def read_restorer_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a restorer file, on the CPU, read without running anything it contains.

    Raises ModelError when the file is missing, empty, not a weights file, or unsafe, and
    DependencyError without spandrel.
    """
    import torch

    spandrel = require_spandrel()
    p = require_file(path, "Face restoration model", RESTORE_HELP)
    suffix = p.suffix.lower()
    if suffix not in RESTORE_SUFFIXES:
        raise ModelError(
            f"{p.name}: a face restoration model is a {', '.join(RESTORE_SUFFIXES)} file, "
            f"not {suffix or 'no extension'}."
        )
    raw = load_weights(p, "weights file", RESTORE_HELP)
    state = spandrel.canonicalize_state_dict(raw) if isinstance(raw, dict) else raw
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{p.name} holds no weights; it is not a face restoration model. {RESTORE_HELP}")
    return {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


@dataclass
class FaceRestorer:
    """A loaded face restoration network: spandrel's model descriptor and the file's name."""

    descriptor: Any
    name: str

    @property
    def architecture(self) -> str:
        """spandrel's architecture id: ``GFPGAN``, ``RestoreFormer`` or ``CodeFormer``."""
        return str(self.descriptor.architecture.id)

    @property
    def module(self) -> torch.nn.Module:
        return self.descriptor.model  # type: ignore[no-any-return]

    @property
    def uses_fidelity(self) -> bool:
        return self.architecture == "CodeFormer"

    def to(self, device: object) -> FaceRestorer:
        """Move the network to ``device``: a ``torch.device``, its name, or a torch-free
        ``lipsync.models.base.Device`` (a generator's ``device`` outside torch)."""
        import torch

        self.descriptor.to(device if isinstance(device, torch.device) else torch.device(str(device)))
        return self

    def __call__(self, faces: torch.Tensor, fidelity: float = 0.5) -> torch.Tensor:
        """(B, 3, 512, 512) RGB in [0, 1] -> the same, restored. The three networks take and give
        [-1, 1] (their training convention; spandrel's own call does not rescale for GFPGAN and
        CodeFormer), so the scaling is done here, the same for all."""
        extra: dict[str, Any] = {}
        if self.architecture == "CodeFormer":
            extra = {"weight": float(fidelity)}
        elif self.architecture == "GFPGAN":
            extra = {"return_rgb": False, "randomize_noise": False}
        out = self.module(faces * 2.0 - 1.0, **extra)[0]
        return ((out + 1.0) / 2.0).clamp_(0.0, 1.0)


def restorer_from_state_dict(state: dict[str, torch.Tensor], name: str = "state dict") -> FaceRestorer:
    """Recognise and build a restorer from its tensors (see ``load_restorer``)."""
    spandrel = require_spandrel()
    try:
        descriptor = _registry().load(state)
    except spandrel.UnsupportedModelError as exc:
        if all(k in state for k in _CODEFORMER_KEYS) and not _has_extra_arches():
            raise DependencyError(
                f"{name} is a CodeFormer model, which needs pip install spandrel-extra-arches "
                "(CodeFormer is for non-commercial use only)."
            ) from exc
        raise ModelError(f"{name} is not a model spandrel recognises. {RESTORE_HELP}") from exc
    except (RuntimeError, KeyError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{name} looks like a spandrel model but its weights do not fit ({first}); download it again."
        ) from exc
    arch = str(descriptor.architecture.id)
    if arch not in FACE_ARCHITECTURES:
        raise ModelError(
            f"{name} is a {arch} model ({getattr(descriptor, 'purpose', 'image model')}), not a face restorer "
            f"({', '.join(FACE_ARCHITECTURES)}); upscalers go in models/upscale_models."
        )
    descriptor.eval()
    descriptor.model.requires_grad_(False)
    return FaceRestorer(descriptor, name)


def load_restorer(path: str | os.PathLike[str], device: object = "cpu") -> FaceRestorer:
    """Load GFPGAN, RestoreFormer or CodeFormer weights from ``path`` onto ``device`` (see ``FaceRestorer.to``).

    Raises DependencyError without spandrel (or CodeFormer without spandrel-extra-arches) and
    ModelError for a missing, unsafe or unrecognised file, or a model that is not a face restorer.
    """
    restorer = restorer_from_state_dict(read_restorer_weights(path), Path(path).name)
    return restorer.to(device)


def _as_nchw(faces: Any) -> torch.Tensor:
    import torch

    t = faces if isinstance(faces, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(faces, dtype=np.float32))
    if t.ndim != 4 or t.shape[-1] < 3 or t.shape[0] == 0:
        raise InputError(f"Faces to restore must be a (count, height, width, 3) RGB batch; got shape {tuple(t.shape)}.")
    return t[..., :3].permute(0, 3, 1, 2)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    import torch.nn.functional as F

    shrinking = x.shape[-1] > size or x.shape[-2] > size
    out = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=shrinking)
    return out.clamp_(0.0, 1.0)


def restore_faces(
    restorer: FaceRestorer,
    faces: Any,
    strength: float = 1.0,
    fidelity: float = 0.5,
    *,
    output_size: int | None = RESTORE_SIZE,
    batch_size: int = 4,
    progress: ProgressFn | None = None,
) -> F32:
    """Restore RGB faces (N, H, W, 3) float in [0, 1] (numpy or torch, any square-ish size).

    Each face is grown to 512 (bicubic), restored, mixed with the grown input as
    ``input + strength * (restored - input)`` and resized to ``output_size`` (None: the input's
    height). Returns float32 (N, S, S, 3) RGB in [0, 1] on the CPU. ``progress(done, total)`` is
    called after each batch (a host can raise from it to stop).
    """
    if not 0.0 <= strength <= 1.0:
        raise InputError(f"Restoration strength must be between 0 and 1; got {strength}.")
    if not 0.0 <= fidelity <= 1.0:
        raise InputError(f"Restoration fidelity must be between 0 and 1; got {fidelity}.")
    import torch

    x_all = _as_nchw(faces)
    size = int(output_size or x_all.shape[2])
    param = next(restorer.module.parameters())
    total = x_all.shape[0]
    out = np.empty((total, size, size, 3), dtype=np.float32)
    step = max(1, int(batch_size))
    with torch.inference_mode():
        for start in range(0, total, step):
            # contiguous: the batch is a view of NHWC pixels, and GFPGAN reshapes with .view
            x = _resize(x_all[start : start + step].to(param.device, torch.float32).contiguous(), RESTORE_SIZE)
            y = x if strength == 0.0 else torch.lerp(x, restorer(x.to(param.dtype), fidelity).float(), strength)
            y = _resize(y, size)
            out[start : start + len(y)] = y.permute(0, 2, 3, 1).cpu().numpy()
            if progress is not None:
                progress(min(start + step, total), total)
    return out


def restore_predictions(restorer: FaceRestorer, pred_bgr: F32, strength: float = 1.0, fidelity: float = 0.5) -> F32:
    """The pipeline's form: Wav2Lip's output (N, 3, 96, 96) BGR in [0, 1] -> restored
    (N, 3, 512, 512) BGR, ready for ``composite.paste_mouth``."""
    rgb = np.ascontiguousarray(pred_bgr[:, ::-1].transpose(0, 2, 3, 1))
    restored = restore_faces(restorer, rgb, strength, fidelity)
    return np.ascontiguousarray(restored.transpose(0, 3, 1, 2)[:, ::-1])
