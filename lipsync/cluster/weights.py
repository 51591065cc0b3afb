"""A loaded generator as bytes for the object store, and back on a worker.

The driver packs the weights once (safetensors: tensors only, nothing executable); Ray stores them
once and hands them to every worker, so no worker reads the checkpoint file or needs the models
folder for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..models.base import Generator

__all__ = ["GeneratorPayload", "pack_generator", "unpack_generator"]


@dataclass(frozen=True)
class GeneratorPayload:
    """A Wav2Lip torch generator's ``name`` and its float32 weights as safetensors ``weights``."""

    family: str
    name: str
    weights: bytes


def pack_generator(generator: Generator) -> GeneratorPayload:
    """The weights of ``generator`` (a torch Wav2Lip, as ``load_generator`` makes it) as bytes.
    InputError for any other kind (ONNX, a stand-in): a cluster ships torch weights."""
    from safetensors.torch import save

    from ..models.wav2lip.generator import TorchGenerator

    if not isinstance(generator, TorchGenerator):
        raise InputError(
            f"The cluster runs Wav2Lip checkpoints loaded with torch (.pth or .safetensors); {generator.name!r} is a "
            f"{type(generator).__name__}. Give such a checkpoint loaded in exact precision (--precision exact; in "
            "ComfyUI cpu_precision exact on Load Wav2Lip Model), or run without --cluster."
        )
    state = {k: v.detach().float().cpu().contiguous() for k, v in generator.module.state_dict().items()}
    return GeneratorPayload(family=generator.family, name=generator.name, weights=save(state))


def unpack_generator(payload: GeneratorPayload, device: str = "auto", fp16: bool = False) -> Any:
    """The generator ``payload`` holds, on ``device`` (``auto``: the GPU Ray gave this worker, else
    the CPU), float16 with ``fp16`` (GPU only)."""
    import torch
    from safetensors.torch import load

    from ..models.wav2lip.generator import TorchGenerator, build_module, resolve_device

    dev = resolve_device(device)
    dtype = torch.float16 if fp16 and dev.type != "cpu" else torch.float32
    module = build_module(load(payload.weights)).to(dev, dtype)
    return TorchGenerator(module, name=payload.name)
