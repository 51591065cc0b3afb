"""lipsync: Wav2Lip lip-sync as a library — the engine behind the ReSync ComfyUI node pack.

Importing the package is cheap: the heavy modules (torch, OpenCV, PyAV) load on first use of
the names that need them.

    from lipsync import LipSyncOptions, lipsync_video, load_generator
    gen = load_generator("models/wav2lip/wav2lip_gan.pth")
    lipsync_video("talk.mp4", "new_voice.wav", "out.mp4", gen, LipSyncOptions.of(missing_face="hold"))

    gen = load_musetalk("models/musetalk")  # MuseTalk 1.5 (pip install "comfyui-resync[musetalk]")

The layers (``lipsync.options`` settings by concern ← ``media`` ← ``models`` ← ``faces`` ←
``composite``/``restore`` ← ``engine`` ← ``cluster`` ← ``cli``) are described in ../shared/DESIGN.md.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    AudioError,
    Cancelled,
    ClusterError,
    DependencyError,
    FaceNotFoundError,
    InputError,
    LipSyncError,
    ModelError,
    OutputError,
    VideoError,
)
from .options import (
    ClusterOptions,
    CompositeOptions,
    EncodeOptions,
    FaceOptions,
    LipSyncOptions,
    ModelOptions,
    RestoreOptions,
    RunOptions,
    SourceOptions,
    SyncOptions,
)
from .types import Box, Detection, FaceFrame, VideoInfo, Waveform

__version__ = "0.1.0"

_LAZY = {
    "AudioFeatures": "models.base",
    "CropSpec": "models.base",
    "Generator": "models.base",
    "LipSyncResult": "engine.lipsync",
    "lipsync_video": "engine.lipsync",
    "prepare_audio": "engine.lipsync",
    "SegmentResult": "engine.segment",
    "revoice_segment": "engine.segment",
    "run_batch": "engine.batch.run",
    "load_generator": "models.wav2lip.generator",
    "load_musetalk": "models.musetalk.generator",
    "convert_to_safetensors": "models.wav2lip.checkpoint",
    "load_audio": "media.audio",
    "probe": "media.video",
    "iter_frames": "media.video",
    "VideoWriter": "media.video",
    "create_detector": "faces",
}

__all__ = sorted(
    [
        "AudioError",
        "Box",
        "ClusterError",
        "ClusterOptions",
        "CompositeOptions",
        "EncodeOptions",
        "FaceOptions",
        "LipSyncOptions",
        "ModelOptions",
        "RestoreOptions",
        "RunOptions",
        "SourceOptions",
        "SyncOptions",
        "Cancelled",
        "DependencyError",
        "Detection",
        "FaceFrame",
        "FaceNotFoundError",
        "InputError",
        "LipSyncError",
        "ModelError",
        "OutputError",
        "VideoError",
        "VideoInfo",
        "Waveform",
        "__version__",
        *_LAZY,
    ]
)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lipsync' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
