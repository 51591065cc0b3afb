"""Model loading for every command, in one place: ``ModelOptions`` (``--checkpoint``,
``--models-dir``, ``--device``, ``--fp16``) → a ready ``Generator``.

``models_dirs`` and ``find_checkpoint`` live here until they move into the models layer; then
only the import in this module changes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelError

if TYPE_CHECKING:
    from ..models.wav2lip.generator import Generator
    from ..options import ModelOptions

__all__ = ["CHECKPOINT_NAMES", "find_checkpoint", "load_model", "models_dirs"]

CHECKPOINT_NAMES = ("wav2lip_gan.pth", "wav2lip.pth", "wav2lip_gan.safetensors", "wav2lip.safetensors")


def models_dirs() -> list[Path]:
    """Where checkpoints are looked for: $LIPSYNC_MODELS, ./models, and this checkout's models/."""
    dirs = []
    if os.environ.get("LIPSYNC_MODELS"):
        dirs.append(Path(os.environ["LIPSYNC_MODELS"]).expanduser())
    dirs.append(Path.cwd() / "models")
    dirs.append(Path(__file__).resolve().parents[2] / "models")
    return list(dict.fromkeys(d.resolve() for d in dirs))


def find_checkpoint(explicit: str | None, models_dir: str | None = None) -> Path:
    """The checkpoint to use: ``explicit``, else a known name in a models/wav2lip folder."""
    from ..models.wav2lip.checkpoint import CHECKPOINT_HELP

    if explicit:
        return Path(explicit)
    searched = []
    bases = ([Path(models_dir).expanduser().resolve()] if models_dir else []) + models_dirs()
    for base in dict.fromkeys(bases):
        folder = base / "wav2lip"
        searched.append(str(folder))
        for name in CHECKPOINT_NAMES:
            if (folder / name).is_file():
                return folder / name
        others = sorted(p for p in folder.glob("*") if p.suffix in (".pth", ".safetensors", ".onnx")) if folder.is_dir() else []
        if others:
            return others[0]
    raise ModelError(f"No Wav2Lip checkpoint found (looked in {', '.join(searched)}). {CHECKPOINT_HELP}")


def load_model(options: ModelOptions) -> Generator:
    """The generator ``options`` name: its checkpoint found, loaded on its device (float16 with
    ``fp16``). Torch and the model code are imported here, on use."""
    import torch

    from ..models.wav2lip import generator  # looked up on call: tests replace load_generator

    path = find_checkpoint(options.checkpoint, options.models_dir)
    return generator.load_generator(path, options.device, torch.float16 if options.fp16 else None)
