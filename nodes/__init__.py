"""The ReSync node pack: ComfyUI glue over the ``lipsync`` library (V3 schema).

This package is the only place that imports ComfyUI (``comfy_api``, ``folder_paths``,
``comfy.*``); the root ``__init__.py`` imports it only inside ``comfy_entrypoint``.
"""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from ._host import register_model_folders
from .audio import AudioToMel
from .batch import LipSyncBatch
from .faces import DetectFaces
from .generate import Composite, Wav2LipGenerate
from .lipsync import LipSyncVideo
from .model import LoadWav2LipModel
from .musetalk import LoadMuseTalkModel
from .restore import FaceRestore
from .segment import RevoiceSegment
from .video import LoadVideo, SaveVideo

__all__ = ["NODES", "ReSyncExtension"]

NODES: list[type[io.ComfyNode]] = [
    LoadVideo,
    AudioToMel,
    DetectFaces,
    LoadWav2LipModel,
    LoadMuseTalkModel,
    Wav2LipGenerate,
    FaceRestore,
    Composite,
    SaveVideo,
    LipSyncVideo,
    RevoiceSegment,
    LipSyncBatch,
]
"""Every node of the pack, in the order of the data flow."""


class ReSyncExtension(ComfyExtension):
    """What ``comfy_entrypoint`` returns: registers the model folders, lists the nodes."""

    async def on_load(self) -> None:
        register_model_folders()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        register_model_folders()  # hosts that never call on_load (0.3.x) still get the folders
        return list(NODES)
