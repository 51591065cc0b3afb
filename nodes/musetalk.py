"""ReSync Load MuseTalk Model: MuseTalk 1.5 from models/musetalk, its three parts handed to the
host's model manager.

The folder holds MuseTalk's own layout (``musetalkV15/``, ``sd-vae/``, ``whisper/``), directly
or one level down (``models/musetalk/<name>/musetalkV15``); the combo lists each layout by its UNet
folder. The UNet, the VAE and the whisper encoder are each wrapped in the host's ModelPatcher and
placed together right before use (``MuseTalkModel.generator()``), so ComfyUI frees VRAM for all
three at once and offloads them when another model needs the room.

The output is the pack's one model type (``RESYNC_WAV2LIP``, named before there were two
families): every node that takes a model takes this one too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from comfy_api.latest import io

from ..lipsync.errors import ModelError
from ..lipsync.models.musetalk.generator import MuseTalkGenerator
from ..lipsync.models.musetalk.loading import (
    FOLDER_HELP,
    find_parts,
    is_musetalk_folder,
    load_unet,
    load_vae,
    load_whisper,
)
from ..lipsync.models.registry import MUSETALK_LICENCE_NOTE
from . import _host
from ._common import WAV2LIP, category, mtime

__all__ = ["PRECISIONS", "LoadMuseTalkModel", "MuseTalkModel", "musetalk_names"]

UNET_FOLDER = "musetalkV15"
PRECISIONS = ["auto", "fp32", "fp16", "bf16"]
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class _Part(torch.nn.Module):
    """One MuseTalk part as the host's ModelPatcher holds it. The host sets plain attributes
    (``device``, ``model_loaded_weight_memory``, ...) on the module it manages, which diffusers'
    and transformers' models refuse (their ``device`` is a read-only property); this holder takes
    them, and its ``inner`` is the part itself (moved with it, weights counted with it)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner


@dataclass
class MuseTalkModel:
    """MuseTalk 1.5 as the pack's model value: the host's ModelPatchers around the UNet, the VAE and
    the whisper encoder, plus what is not a module (the feature extractor, the latent scale)."""

    name: str
    unet: Any
    vae: Any
    whisper: Any
    feature_extractor: Any
    scaling_factor: float

    def generator(self) -> MuseTalkGenerator:
        """The three parts placed on the host's device now (others may be offloaded), as one Generator."""
        unet, vae, whisper = (part.inner for part in _host.load_patchers([self.unet, self.vae, self.whisper]))
        return MuseTalkGenerator(unet, vae, whisper, self.feature_extractor, scaling_factor=self.scaling_factor,
                                 name=self.name)


def _layouts(base: str) -> list[str]:
    """The layouts in one registered folder, each named by its UNet folder relative to it."""
    names = [UNET_FOLDER] if is_musetalk_folder(base) else []
    try:
        subs = sorted(e.name for e in os.scandir(base) if e.is_dir())
    except OSError:
        subs = []
    names += [f"{sub}/{UNET_FOLDER}" for sub in subs if is_musetalk_folder(os.path.join(base, sub))]
    return names


def musetalk_names() -> list[str]:
    """Every MuseTalk layout in the registered musetalk folders (extra_model_paths.yaml included)."""
    _host.register_model_folders()
    names: list[str] = []
    for base in _host.folder_paths().get_folder_paths(_host.MUSETALK_FOLDER):
        names += [n for n in _layouts(base) if n not in names]
    return names


def _resolve(name: str) -> Path | None:
    _host.register_model_folders()
    for base in _host.folder_paths().get_folder_paths(_host.MUSETALK_FOLDER):
        folder = (Path(base) / name).parent
        if Path(name).name == UNET_FOLDER and is_musetalk_folder(folder):
            return folder
    return None


def _missing(name: str) -> str:
    folders = ", ".join(_host.folder_paths().get_folder_paths(_host.MUSETALK_FOLDER))
    return (f"MuseTalk model '{name}' was not found in {folders}. {FOLDER_HELP} Get them with: "
            "python -m lipsync download musetalk --models-dir ComfyUI/models")


def _dtype(precision: str, device: Any) -> torch.dtype:
    gpu = torch.device(device).type != "cpu"
    if precision == "auto":
        return torch.float16 if gpu and _host.model_management().should_use_fp16(device) else torch.float32
    if precision == "fp16" and not gpu:
        raise ModelError("fp16 needs a GPU; on the CPU choose precision auto or fp32.")
    return _DTYPES[precision]


class LoadMuseTalkModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ReSyncLoadMuseTalkModel",
            display_name="ReSync Load MuseTalk Model",
            category=category("model"),
            description=(
                "Load MuseTalk 1.5 from ComfyUI/models/musetalk (musetalkV15/, sd-vae/, whisper/ as MuseTalk's "
                "download_weights.sh lays them out; 'python -m lipsync download musetalk' fetches them). It redraws "
                "the lower half of a 256x256 face: sharper than Wav2Lip's 96x96 mouth, but ~100x the compute "
                f"(a GPU is needed for useful speed). {MUSETALK_LICENCE_NOTE} Connect it wherever a ReSync "
                "model goes."
            ),
            inputs=[
                io.Combo.Input(
                    "model_dir", options=musetalk_names(),
                    tooltip="The MuseTalk layout, by its UNet folder (musetalkV15). Cost: ~3.9 GB of RAM/VRAM "
                    "in fp32 (half in fp16/bf16), a few seconds to load.",
                ),
                io.Combo.Input(
                    "precision", options=PRECISIONS, default="auto",
                    tooltip="auto: fp16 on GPUs where ComfyUI uses it, fp32 elsewhere. fp16/bf16 halve the VRAM and "
                    "are much faster on a GPU (bf16 needs an Ampere or newer GPU); fp16 needs a GPU.",
                ),
            ],
            outputs=[WAV2LIP.Output(display_name="model", tooltip="MuseTalk 1.5, managed by ComfyUI's model manager.")],
        )

    @classmethod
    def validate_inputs(cls, model_dir: str | None = None) -> bool | str:
        if model_dir is None or _resolve(model_dir) is not None:
            return True
        return _missing(model_dir)

    @classmethod
    def fingerprint_inputs(cls, model_dir: str = "", **_: Any) -> float:
        folder = _resolve(model_dir) if model_dir else None
        return mtime(str(folder / UNET_FOLDER / "unet.pth")) if folder else float("nan")

    @classmethod
    def execute(cls, model_dir: str, precision: str = "auto") -> io.NodeOutput:
        folder = _resolve(model_dir)
        if folder is None:
            raise ModelError(_missing(model_dir))
        dtype = _dtype(precision, _host.model_management().get_torch_device())
        parts = find_parts(folder)
        unet = load_unet(parts)
        vae, scaling = load_vae(parts.vae_dir)
        whisper, extractor = load_whisper(parts.whisper_dir)
        patchers = [_host.make_patcher(_Part(torch.nn.Module.to(m, dtype=dtype))) for m in (unet, vae, whisper)]
        return io.NodeOutput(MuseTalkModel(model_dir, *patchers, extractor, scaling))
