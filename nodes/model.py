"""ReSync Load Wav2Lip Model: a checkpoint from models/wav2lip, handed to the host's model manager.

The module is wrapped in the host's ModelPatcher, so ComfyUI decides when it sits on the GPU and
offloads it (or the diffusion models of the same graph) when VRAM is short; the nodes that run
it call ``Wav2LipModel.generator()`` right before use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from comfy_api.latest import io

from ..lipsync.models.wav2lip.checkpoint import CHECKPOINT_HELP, CHECKPOINT_SUFFIXES, read_state_dict
from ..lipsync.errors import ModelError
from ..lipsync.models.wav2lip.generator import Generator, OnnxGenerator, TorchGenerator, build_module, load_generator
from ..lipsync.options import ModelOptions
from . import _host
from ._common import WAV2LIP, category, mtime
from ._options import Uses, options_from_inputs

__all__ = ["LoadWav2LipModel", "Wav2LipModel"]

PRECISIONS = ["auto", "fp32", "fp16"]


@dataclass
class Wav2LipModel:
    """The RESYNC_WAV2LIP value: a loaded Wav2Lip 96 network.

    ``patcher`` is the host's ModelPatcher around ``lipsync.models.wav2lip.network.Wav2Lip`` (torch checkpoints);
    ``onnx`` an onnxruntime session (``.onnx`` conversions, which the host cannot manage).
    """

    name: str
    patcher: Any = None
    onnx: OnnxGenerator | None = None
    path: str | None = None
    cpu_precision: str = "exact"
    _cpu: Generator | None = None

    def generator(self) -> Generator:
        """The network, placed on the host's device now (other models may be offloaded). On the
        CPU with a reduced ``cpu_precision`` it is the library's CPU generator (made once; the host
        does not manage it: it never leaves the CPU)."""
        if self.onnx is not None:
            return self.onnx
        if self.cpu_precision != "exact" and self.path is not None:
            if torch.device(_host.model_management().get_torch_device()).type == "cpu":
                if self._cpu is None:
                    self._cpu = load_generator(self.path, "cpu", precision=self.cpu_precision)  # type: ignore[arg-type]
                return self._cpu
        return TorchGenerator(_host.load_patcher(self.patcher), name=self.name)


def checkpoint_names() -> list[str]:
    """Checkpoints in every registered wav2lip folder (extra_model_paths.yaml included)."""
    _host.register_model_folders()
    names = _host.folder_paths().get_filename_list(_host.MODEL_FOLDER)
    return [n for n in names if os.path.splitext(n)[1].lower() in CHECKPOINT_SUFFIXES]


def _missing(name: str) -> str:
    folders = ", ".join(_host.folder_paths().get_folder_paths(_host.MODEL_FOLDER))
    return f"Wav2Lip checkpoint '{name}' was not found in {folders}. {CHECKPOINT_HELP}"


def _resolve(name: str) -> str | None:
    _host.register_model_folders()
    if os.path.splitext(name)[1].lower() not in CHECKPOINT_SUFFIXES:
        return None
    return _host.folder_paths().get_full_path(_host.MODEL_FOLDER, name)


def _dtype(precision: str, device: Any) -> torch.dtype:
    if precision == "fp16" or (precision == "auto" and _host.model_management().should_use_fp16(device)):
        if torch.device(device).type == "cpu":
            raise ModelError("fp16 needs a GPU; on the CPU choose precision auto or fp32.")
        return torch.float16
    return torch.float32


class LoadWav2LipModel(io.ComfyNode):
    USES = Uses(
        groups=(ModelOptions,),
        left={
            "family": "this node loads Wav2Lip; MuseTalk 1.5 has its own loader (ReSync Load MuseTalk Model)",
            "checkpoint": "the ckpt_name input (a file of the host's wav2lip folders)",
            "models_dir": "the host's model folders",
            "device": "the host's model manager places the network",
            "fp16": "the precision input (auto follows the host)",
        },
    )

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ReSyncLoadWav2LipModel",
            display_name="ReSync Load Wav2Lip Model",
            category=category("model"),
            description=(
                "Load a Wav2Lip 96x96 checkpoint from ComfyUI/models/wav2lip (or a wav2lip folder of "
                "extra_model_paths.yaml): wav2lip_gan.pth looks better, wav2lip.pth syncs a bit better. "
                ".pth is read safely (weights only), .safetensors and .onnx are supported. The weights are "
                "for research and non-commercial use only (trained on LRS2)."
            ),
            inputs=[
                io.Combo.Input(
                    "ckpt_name", options=checkpoint_names(),
                    tooltip="Checkpoint file in models/wav2lip. Cost: ~140 MB of RAM/VRAM (half in fp16), "
                    "about a second to load.",
                ),
                io.Combo.Input(
                    "precision", options=PRECISIONS, default="auto",
                    tooltip="auto: fp16 on GPUs where ComfyUI uses it (half the VRAM, faster), fp32 elsewhere. "
                    "fp16 needs a GPU.",
                ),
                *cls.USES.inputs(ModelOptions, ("precision",), optional=True),
            ],
            outputs=[WAV2LIP.Output(display_name="model", tooltip="The network, managed by ComfyUI's model manager.")],
        )

    @classmethod
    def validate_inputs(cls, ckpt_name: str | None = None) -> bool | str:
        if ckpt_name is None or _resolve(ckpt_name) is not None:
            return True
        return _missing(ckpt_name)

    @classmethod
    def fingerprint_inputs(cls, ckpt_name: str = "", **_: Any) -> float:
        return mtime(_resolve(ckpt_name)) if ckpt_name else float("nan")

    @classmethod
    def execute(cls, ckpt_name: str, precision: str = "auto", **settings: Any) -> io.NodeOutput:
        cpu_precision = options_from_inputs(ModelOptions, settings, cls.USES.widgets).precision
        path = _resolve(ckpt_name)
        if path is None:
            raise ModelError(_missing(ckpt_name))
        mm = _host.model_management()
        device = mm.get_torch_device()
        name = Path(ckpt_name).stem
        if path.lower().endswith(".onnx"):
            return io.NodeOutput(Wav2LipModel(name, onnx=OnnxGenerator(path, torch.device(device))))
        module = build_module(read_state_dict(path)).to(dtype=_dtype(precision, device))
        return io.NodeOutput(Wav2LipModel(name, patcher=_host.make_patcher(module), path=path,
                                          cpu_precision=cpu_precision))
