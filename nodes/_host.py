"""Every use of the host's own modules (folder_paths, comfy.*, server), behind small functions.

The node modules import ``comfy_api.latest`` for their schemas; everything else they need from
ComfyUI comes through here, imported on first use, so the surface the pack depends on is in one
place (and is what the test fakes imitate).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = [
    "MODEL_FOLDER",
    "MUSETALK_FOLDER",
    "check_interrupt",
    "detector_models_dir",
    "file_metadata",
    "folder_paths",
    "load_patcher",
    "load_patchers",
    "make_patcher",
    "model_management",
    "progress_bar",
    "register_model_folders",
    "save_path",
    "should_stop",
    "show_text",
    "video_from_file",
]

MODEL_FOLDER = "wav2lip"
"""The models/ subfolder (and folder_paths name) of Wav2Lip checkpoints."""
MUSETALK_FOLDER = "musetalk"
"""The models/ subfolder (and folder_paths name) of MuseTalk 1.5 (musetalkV15/, sd-vae/, whisper/)."""

_SHARED_FOLDERS = ("insightface", "facerestore_models")
"""Folders other packs use too; registered so the same files serve every pack."""


def folder_paths() -> Any:
    import folder_paths as module

    return module


def model_management() -> Any:
    import comfy.model_management as module

    return module


def register_model_folders() -> None:
    """Add models/wav2lip, models/musetalk, models/insightface and models/facerestore_models to the
    host's model folders. ``add_model_folder_path`` appends, so paths from extra_model_paths.yaml (loaded
    before custom nodes) keep their place and stay searched."""
    fp = folder_paths()
    for name in (MODEL_FOLDER, MUSETALK_FOLDER, *_SHARED_FOLDERS):
        fp.add_model_folder_path(name, os.path.join(fp.models_dir, name))


def detector_models_dir() -> str:
    """The models folder handed to the face detectors: the parent of the first insightface
    folder that holds model packs (so a shared InsightFace install is found), else models/."""
    register_model_folders()
    fp = folder_paths()
    for folder in fp.get_folder_paths("insightface"):
        if os.path.isdir(os.path.join(folder, "models")):
            return os.path.dirname(os.path.normpath(folder))
    return str(fp.models_dir)


def make_patcher(module: Any) -> Any:
    """Wrap a torch module for the host's memory manager (CoreModelPatcher on newer hosts)."""
    import comfy.model_patcher as patcher_module

    mm = model_management()
    cls = getattr(patcher_module, "CoreModelPatcher", None) or patcher_module.ModelPatcher
    return cls(module, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())


def load_patcher(patcher: Any) -> Any:
    """Ask the host to place the model on its device (unloading others if VRAM is short) and
    return the module. Fully: a partly offloaded plain module would mix devices."""
    model_management().load_models_gpu([patcher], force_full_load=True)
    return patcher.model


def load_patchers(patchers: list[Any]) -> list[Any]:
    """``load_patcher`` for the parts of one model (MuseTalk: UNet, VAE, whisper) in one request,
    so the host frees room for all of them together; their modules, in order."""
    model_management().load_models_gpu(list(patchers), force_full_load=True)
    return [p.model for p in patchers]


def check_interrupt() -> None:
    """Raise the host's InterruptProcessingException when the user pressed Cancel."""
    model_management().throw_exception_if_processing_interrupted()


def should_stop() -> bool:
    """The library's ``should_stop`` callback: raises the host's interrupt exception when Cancel
    was pressed (so the job stops at once, leaving no output), else False."""
    check_interrupt()
    return False


def show_text(text: str, node_id: Any) -> None:
    """Show ``text`` on the running node (the host's progress text; hosts without it: nothing)."""
    try:
        from server import PromptServer
    except ImportError:
        return
    send = getattr(getattr(PromptServer, "instance", None), "send_progress_text", None)
    if send is not None and node_id is not None:
        send(text, node_id)


def progress_bar(total: int) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that drives the node's progress bar."""
    import comfy.utils

    bar = comfy.utils.ProgressBar(max(1, int(total)))

    def update(done: int, new_total: int) -> None:
        bar.update_absolute(int(done), max(1, int(new_total)))

    return update


def save_path(filename_prefix: str, width: int, height: int, extension: str) -> tuple[str, str, str]:
    """(full path, file name, subfolder) of the next free output file for ``filename_prefix``,
    numbered with the host's counter like its own SaveVideo: ``<prefix>_00001_.mp4``."""
    fp = folder_paths()
    folder, name, counter, subfolder, _ = fp.get_save_image_path(
        filename_prefix, fp.get_output_directory(), width, height
    )
    filename = f"{name}_{counter:05}_.{extension}"
    return os.path.join(folder, filename), filename, subfolder


def file_metadata(prompt: Any, extra_pnginfo: Any) -> dict[str, str]:
    """The container tags the host writes into saved videos: ``prompt`` and each extra_pnginfo
    entry (``workflow``) as JSON, so dropping the file onto ComfyUI restores the graph.
    Empty when the host runs with --disable-metadata."""
    import json

    from comfy.cli_args import args

    if getattr(args, "disable_metadata", False):
        return {}
    tags: dict[str, str] = {}
    for key, value in (extra_pnginfo or {}).items():
        tags[str(key)] = json.dumps(value)
    if prompt is not None:
        tags["prompt"] = json.dumps(prompt)
    return tags


def video_from_file(path: str) -> Any:
    """The host's VIDEO value for a file on disk (nothing is decoded)."""
    from comfy_api.latest import InputImpl

    return InputImpl.VideoFromFile(path)
