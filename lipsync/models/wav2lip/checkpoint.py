"""Loading Wav2Lip weights safely: ``.pth`` (pickle, read with ``weights_only=True``),
``.safetensors``, and the ONNX conversions people download (through onnxruntime).

Nothing here executes what a file contains: torch's weights-only unpickler refuses any pickle
that would build arbitrary objects, and safetensors/ONNX are data formats.

The published ``wav2lip.pth`` / ``wav2lip_gan.pth`` are legacy (non-zip) pickles holding
``{"state_dict": {"module.<key>": tensor}, "optimizer": ..., ...}``. ``weights_only=True``
reads that format; ``mmap=True`` would not, so it is not used.
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ...errors import DependencyError, ModelError
from ...media.atomic import atomic_path
from .network import Wav2Lip

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


# A torch checkpoint is a zip archive (torch >= 1.6) or a legacy pickle (protocol 2+ starts with
# the PROTO opcode 0x80). Anything else (a web page saved instead of the file, a Git LFS pointer,
# an ONNX model renamed .pth) is reported as "not a checkpoint", not as an unsafe pickle.
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80

# What the weights-only unpickler and the legacy reader raise on bytes that are cut short or
# garbled (struct.error, IndexError and KeyError come from reading a half-written pickle).
_CORRUPT_ERRORS = (
    EOFError,
    RuntimeError,
    zipfile.BadZipFile,
    ValueError,
    OSError,
    IndexError,
    KeyError,
    TypeError,
    AssertionError,
    struct.error,
)


def _corrupt(path: Path, detail: str) -> ModelError:
    return ModelError(
        f"Cannot read {path.name} ({path.stat().st_size:,} bytes): the file is truncated or corrupt "
        f"({detail}). Download it again. {CHECKPOINT_HELP}"
    )


def _first_bytes(path: Path, n: int = 16) -> bytes:
    with path.open("rb") as f:
        return f.read(n)


def _is_refusal(exc: pickle.UnpicklingError) -> bool:
    """True when the weights-only unpickler refused an object-building instruction; False when it
    met an opcode that no pickle has (garbage bytes)."""
    text = str(exc)
    return not ("Unsupported operand" in text or "String is too long" in text)


def _load_pickle(path: Path) -> Any:
    head = _first_bytes(path)
    if _ZIP_MAGIC.startswith(head):
        raise _corrupt(path, "it ends within its first bytes")
    if not (head.startswith(_ZIP_MAGIC) or head[0] == _PICKLE_PROTO):
        shown = head.decode("ascii", "replace").replace("\n", " ").strip()
        raise _corrupt(
            path, f"not a PyTorch checkpoint: it starts with {shown!r}, perhaps an error page saved instead"
        )
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not _is_refusal(exc):
            raise _corrupt(path, "UnpicklingError: invalid data") from exc
        raise ModelError(
            f"Refused to load {path.name}: it is not a plain weights file (its pickle asks to "
            f"build objects or run code, which safe loading does not allow). Use the original "
            f"checkpoint, or convert a trusted one to .safetensors."
        ) from exc
    except _CORRUPT_ERRORS as exc:
        first_line = str(exc).splitlines()[0] if str(exc).strip() else "the data ends early"
        kind = "struct.error" if isinstance(exc, struct.error) else type(exc).__name__
        raise _corrupt(path, f"{kind}: {first_line}") from exc


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(
            f"Cannot read {path.name}: not a valid .safetensors file ({exc}). Download or "
            f"convert it again."
        ) from exc


def _unwrap(obj: Any, name: str) -> dict[str, torch.Tensor]:
    """The generator's tensors: under ``state_dict`` (the published layout) or at the top level,
    with DataParallel's ``module.`` prefix stripped."""
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
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"Wav2Lip checkpoint not found: {p}. {CHECKPOINT_HELP}")
    if p.stat().st_size == 0:
        raise ModelError(f"Wav2Lip checkpoint {p.name} is empty (0 bytes). Download it again. {CHECKPOINT_HELP}")
    raw = _load_safetensors(p) if p.suffix.lower() == ".safetensors" else _load_pickle(p)
    state = _unwrap(raw, p.name)
    problem = describe_mismatch(state)
    if problem:
        raise ModelError(f"{p.name} is not a Wav2Lip 96×96 generator checkpoint: {problem}")
    return state


def _expected_shapes() -> dict[str, tuple[int, ...]]:
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
