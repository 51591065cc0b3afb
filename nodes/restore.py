"""ReSync Face Restore: GFPGAN / RestoreFormer / CodeFormer (through spandrel) on generated faces.

Sits between ReSync Lip-Sync Generate and ReSync Composite: it takes the generated faces as a
plain IMAGE batch (96x96, or already upscaled), redraws each at the restorer's 512x512 and gives
them back at ``output_size``; Composite resizes them to each face box and takes only the mouth
mask into the frame, so restoration never touches the eyes or anything outside the mask.

Models come from models/facerestore_models (the folder other face packs use). The loaded model
is kept between runs (one at a time) and handed to the host's memory manager like Wav2Lip.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch
from comfy_api.latest import io

from ..lipsync.errors import InputError, ModelError
from ..lipsync.options import RestoreOptions
from ..lipsync.restore import (
    RESTORE_FOLDER,
    RESTORE_HELP,
    RESTORE_SIZE,
    RESTORE_SUFFIXES,
    FaceRestorer,
    load_restorer,
    restore_faces,
)
from . import _host
from ._common import category, memory_problem, mtime
from ._convert import check_images
from ._options import Uses, options_from_inputs

__all__ = ["RESTORE_MODEL_TOOLTIP", "FaceRestore", "model_names", "placed_restorer", "restorer_path"]

RESTORE_MODEL_TOOLTIP = (
    "A face restorer from models/facerestore_models (GFPGAN, RestoreFormer; CodeFormer with spandrel-extra-arches, "
    "non-commercial) run on each generated face at 512 px, blended only inside the mouth mask. Costs a 512 px "
    "network pass per frame."
)

_BATCH = 4
"""Faces per network call (a 512 px face takes ~0.3 GB of activations in these networks)."""


def model_names() -> list[str]:
    """Restorer files in every registered facerestore_models folder."""
    _host.register_model_folders()
    names = _host.folder_paths().get_filename_list(RESTORE_FOLDER)
    return [n for n in names if os.path.splitext(n)[1].lower() in RESTORE_SUFFIXES]


def _resolve(name: str) -> str | None:
    _host.register_model_folders()
    if os.path.splitext(name)[1].lower() not in RESTORE_SUFFIXES:
        return None
    return _host.folder_paths().get_full_path(RESTORE_FOLDER, name)  # type: ignore[no-any-return]


def _missing(name: str) -> str:
    folders = ", ".join(_host.folder_paths().get_folder_paths(RESTORE_FOLDER))
    return f"Face restoration model '{name}' was not found in {folders}. {RESTORE_HELP}"


def restorer_path(model_name: str) -> str:
    """The file of the restorer ``model_name`` (for the library to load itself); ModelError when
    it is not in a facerestore_models folder."""
    path = _resolve(model_name)
    if path is None:
        raise ModelError(_missing(model_name))
    return path


@functools.lru_cache(maxsize=1)
def _loaded(path: str, modified: float) -> tuple[FaceRestorer, Any]:
    """The restorer on the CPU and its ModelPatcher; ``modified`` makes a changed file reload."""
    restorer = load_restorer(path, "cpu")
    return restorer, _host.make_patcher(restorer.module)


def placed_restorer(model_name: str) -> FaceRestorer:
    """The restorer ``model_name`` (a file in facerestore_models), loaded once and placed on the
    host's device by its memory manager, ready to run (also for ReSync Lip-Sync Video, which
    passes it to ``lipsync_video(..., restorer=...)``)."""
    path = restorer_path(model_name)
    restorer, patcher = _loaded(path, mtime(path))
    _host.load_patcher(patcher)  # on the host's device now; other models may be offloaded
    return restorer


class FaceRestore(io.ComfyNode):
    USES = Uses(
        groups=(RestoreOptions,),
        left={"restore": "the model_name input: this node always restores, so its list has no 'none'"},
        widgets={
            "restore_strength": {
                "name": "strength",
                "tooltip": "How much of the restored face to use: 0 = the input (only resized), 1 = fully restored.",
            },
            "restore_fidelity": {
                "name": "fidelity",
                "tooltip": "CodeFormer only (its w): 0 = sharpest but invents more, 1 = closest to the input. "
                "GFPGAN and RestoreFormer ignore it.",
            },
        },
    )

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ReSyncFaceRestore",
            display_name="ReSync Face Restore",
            category=category("faces"),
            description=(
                "Sharpen the generated faces with a face restoration model from models/facerestore_models: "
                "GFPGAN (v1.2-1.4) or RestoreFormer, and CodeFormer when spandrel-extra-arches is installed "
                "(CodeFormer is for non-commercial use only). Each face is restored at 512x512 and mixed with "
                "the original by strength. Put it between ReSync Lip-Sync Generate and ReSync Composite: only "
                "the mouth mask of Composite reaches the frame."
            ),
            inputs=[
                io.Image.Input(
                    "images",
                    tooltip="Generated faces from ReSync Lip-Sync Generate (any size; 96x96 as it gives them).",
                ),
                io.Combo.Input(
                    "model_name", options=model_names(),
                    tooltip="Restorer in models/facerestore_models (.pth read weights-only, or .safetensors). "
                    "Cost on a GPU: ~350 MB of VRAM and a few ms a face; on a CPU about a second a face.",
                ),
                *cls.USES.inputs(RestoreOptions, ("restore_strength", "restore_fidelity")),
                io.Int.Input(
                    "output_size", default=RESTORE_SIZE, min=0, max=2048, step=8,
                    tooltip="Side of the faces that come out, in pixels; 0 = the input's. 512 keeps all the "
                    "detail for Composite (RAM: 3 MB a face as an IMAGE).",
                ),
            ],
            outputs=[
                io.Image.Output(
                    display_name="images", tooltip="The restored faces, float32 RGB (count, size, size, 3)."
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, model_name: str | None = None, **_: Any) -> bool | str:
        if model_name is None or _resolve(model_name) is not None:
            return True
        return _missing(model_name)

    @classmethod
    def fingerprint_inputs(cls, model_name: str = "", **_: Any) -> float:
        return mtime(_resolve(model_name)) if model_name else float("nan")

    @classmethod
    def execute(
        cls, images: torch.Tensor, model_name: str, output_size: int = RESTORE_SIZE, **settings: Any
    ) -> io.NodeOutput:
        opts: RestoreOptions = options_from_inputs(RestoreOptions, settings, cls.USES.widgets)
        images = check_images(images, "images")
        count = int(images.shape[0])
        size = int(output_size) or int(images.shape[1])
        problem = memory_problem(count, size, size, "Lower output_size, or use ReSync Lip-Sync Video, which streams.")
        if problem:
            raise InputError(f"Not restoring: {problem}")
        restorer = placed_restorer(model_name)
        progress = _host.progress_bar(count)

        def step(done: int, total: int) -> None:
            _host.check_interrupt()
            progress(done, total)

        out = restore_faces(
            restorer, images[..., :3], opts.restore_strength, opts.restore_fidelity, output_size=size,
            batch_size=_BATCH, progress=step,
        )
        _host.model_management().soft_empty_cache()
        return io.NodeOutput(torch.from_numpy(out))
