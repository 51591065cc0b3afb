"""Model loading for every command, in one place: ``ModelOptions`` (``--checkpoint``,
``--models-dir``, ``--device``, ``--fp16``, ``--precision``) → a ready ``Generator``.

Where weights are looked for is the models layer's one lookup (``lipsync.models.folders``).
On a CPU ``--precision exact`` runs OpenVINO in f32 where it is installed (within 1e-4 of
torch's float32, faster), except with ``--reference`` and for a cluster's driver, which ship or
reproduce torch's float32 numbers; with a converted model cached, a CPU job never imports torch.
``--model musetalk`` loads MuseTalk 1.5 instead of Wav2Lip (``find_musetalk``, ``load_musetalk``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ..models.folders import CHECKPOINT_NAMES, find_checkpoint, find_musetalk, models_dirs

if TYPE_CHECKING:
    from ..models.base import Generator
    from ..models.wav2lip.generator import ExactRuntime
    from ..options import ModelOptions

__all__ = ["CHECKPOINT_NAMES", "find_checkpoint", "load_model", "models_dirs"]


def _load_musetalk(options: ModelOptions) -> Generator:
    """MuseTalk 1.5 from ``--checkpoint`` (its folder) or the models folders (``find_musetalk``),
    float16 with ``fp16``. Needs the musetalk extra, imported here."""
    from ..models.musetalk import generator

    folder = find_musetalk(options.checkpoint, options.models_dir)
    return generator.load_musetalk(folder, options.device, "fp16" if options.fp16 else None)


def load_model(options: ModelOptions, exact_runtime: ExactRuntime = "openvino") -> Generator:
    """The generator ``options`` name: its checkpoint found, loaded on its device (float16 with
    ``fp16``, the CPU ``precision``; a fallback's note goes to stderr). ``exact_runtime``: what runs
    ``exact`` on a CPU (``lipsync.models.wav2lip.generator.load_generator``): ``torch`` for
    ``--reference`` and a cluster's driver. The model code (and torch, where it is needed) is
    imported here, on use."""
    if options.family == "musetalk":
        return _load_musetalk(options)
    from ..models.wav2lip import generator  # looked up on call: tests replace load_generator

    dtype = None
    if options.fp16:
        import torch

        dtype = torch.float16
    path = find_checkpoint(options.checkpoint, options.models_dir)
    _show_first_use_notes()
    loaded = generator.load_generator(path, options.device, dtype, precision=options.precision,
                                      exact_runtime=exact_runtime)
    note = getattr(loaded, "note", None)
    if note:
        print(f"note: {note}", file=sys.stderr)
    return loaded


def _show_first_use_notes() -> None:
    """The CPU runtime's one-line notes of its slow first use (converting, calibrating the
    network; ``lipsync.models.wav2lip.cpu.log``) on stderr, as ``note: …``. Once per process."""
    import logging

    logger = logging.getLogger("lipsync.models.wav2lip.cpu")
    if any(getattr(h, "_lipsync_cli", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("note: %(message)s"))
    handler._lipsync_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
