"""Loading Wav2Lip weights safely: ``.pth`` (pickle, read with ``weights_only=True``),
``.safetensors``, and the ONNX conversions people download (through onnxruntime).

Nothing here executes what a file contains: the reading is ``lipsync.models.safe_load`` (torch's
weights-only unpickler refuses any pickle that would build arbitrary objects, and safetensors/ONNX
are data formats); this module adds what is Wav2Lip's own: the layout and the architecture check.

The published ``wav2lip.pth`` / ``wav2lip_gan.pth`` are legacy (non-zip) pickles holding
``{"state_dict": {"module.<key>": tensor}, "optimizer": ..., ...}``. ``weights_only=True``
reads that format; ``mmap=True`` would not, so it is not used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import DependencyError, ModelError
from ...media.atomic import atomic_path
from ..safe_load import load_weights, require_file

if TYPE_CHECKING:
    import torch

__all__ = [
    "CHECKPOINT_HELP",
    "CHECKPOINT_SUFFIXES",
    "convert_to_safetensors",
    "describe_mismatch",
    "read_state_dict",
]

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors", ".onnx")

CHECKPOINT_HELP = (
    "Get wav2lip_gan.pth (better visuals) or wav2lip.pth (better sync) from the links in the "
    "Wav2Lip README (github.com/Rudrabha/Wav2Lip) or a mirror such as the Hugging Face repo "
    "Nekochu/Wav2Lip, and put it in the models/wav2lip folder (ComfyUI: ComfyUI/models/wav2lip/) "
    "or pass --checkpoint PATH. The weights are for research and non-commercial use only "
    "(trained on LRS2)."
)


def _unwrap(obj: Any, name: str) -> dict[str, torch.Tensor]:
    """The generator's tensors: under ``state_dict`` (the published layout) or at the top level,
    with DataParallel's ``module.`` prefix stripped."""
    import torch  # here: reading a torch checkpoint is where torch is first needed

    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise ModelError(f"{name} holds no weights (found {type(obj).__name__}); it is not a checkpoint.")
    tensors = {str(k).removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelError(f"{name} holds no tensors; it is not a Wav2Lip checkpoint.")
    return tensors


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read and check a Wav2Lip generator checkpoint (.pth/.pt/.safetensors), on the CPU.

    Raises ``ModelError`` with a sentence when the file is missing, truncated, unsafe, or holds
    another architecture (SyncNet, the GAN discriminator, a 256/288/384 px variant, an image model).
    """
    p = require_file(path, "Wav2Lip checkpoint", CHECKPOINT_HELP)
    raw = load_weights(p, "checkpoint", CHECKPOINT_HELP)
    state = _unwrap(raw, p.name)
    problem = describe_mismatch(state)
    if problem:
        raise ModelError(f"{p.name} is not a Wav2Lip 96×96 generator checkpoint: {problem}")
    return state


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    import torch

    from .network import Wav2Lip

    with torch.device("meta"):
        model = Wav2Lip()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _guess_kind(keys: set[str]) -> str:
    if any(k.startswith("binary_pred") for k in keys):
        return "it looks like the Wav2Lip GAN discriminator (binary_pred layers)"
    if any(k.startswith("face_encoder.") for k in keys) and any(k.startswith("audio_encoder.") for k in keys):
        return "it looks like a SyncNet (lip-sync expert) checkpoint, used for training only"
    if any("conv_first" in k or "stylegan" in k.lower() or "body." in k for k in keys):
        return "it looks like an image restoration/upscaling model (those go in models/facerestore_models or models/upscale_models)"
    return ""


def describe_mismatch(state: Mapping[str, torch.Tensor]) -> str:
    """Empty when ``state`` fits the 96×96 Wav2Lip generator; otherwise what differs, in words."""
    expected = _expected_shapes()
    keys = set(state)
    missing = sorted(set(expected) - keys)
    unexpected = sorted(keys - set(expected))
    wrong = sorted(k for k in set(expected) & keys if tuple(state[k].shape) != expected[k])
    if not (missing or unexpected or wrong):
        return ""
    parts = [f"found {len(keys)} tensors, {len(expected)} expected"]
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        k = wrong[0]
        parts.append(f"{len(wrong)} of another shape (e.g. {k}: {tuple(state[k].shape)} instead of {expected[k]})")
    if not missing and not unexpected and wrong:
        parts.append("a Wav2Lip variant for another face size (256/288/384 px) is not supported")
    kind = _guess_kind(keys)
    if kind:
        parts.append(kind)
    return "; ".join(parts) + "."


def convert_to_safetensors(src: str | os.PathLike[str], dst: str | os.PathLike[str] | None = None) -> Path:
    """Write the generator weights of ``src`` as ``.safetensors`` (no optimizer state: ~145 MB
    instead of ~436 MB). Atomic (``lipsync.media.atomic``): a temporary file is renamed when complete."""
    from safetensors.torch import save_file

    source = Path(src)
    target = Path(dst) if dst else source.with_suffix(".safetensors")
    if target.resolve() == source.resolve():
        raise ModelError(f"Converting {source.name} would overwrite it; give another output name.")
    if target.suffix.lower() != ".safetensors":
        # The loaders choose the format by suffix: a .pth holding safetensors could not be read back.
        raise ModelError(f"Name the converted file .safetensors, not {target.name}.")
    state = {k: v.contiguous() for k, v in read_state_dict(source).items()}
    try:
        with atomic_path(target) as temp:
            save_file(state, str(temp), metadata={"format": "pt", "architecture": "wav2lip-96"})
    except OSError as exc:
        raise ModelError(f"Cannot write {target}: {exc.strerror or exc}.") from exc
    return target


def require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise DependencyError(
            "Loading .onnx Wav2Lip models needs onnxruntime: pip install onnxruntime "
            "(or onnxruntime-gpu for CUDA), or use the .pth/.safetensors checkpoint."
        ) from exc
    return onnxruntime
