"""lipsync.models.musetalk: MuseTalk 1.5 (UNet + sd-vae-ft-mse + whisper-tiny) as a Generator.

Needs the optional extra: ``pip install "comfyui-resync[musetalk]"`` (diffusers, transformers);
they are imported only when a model is built or loaded.
"""

from .audio import WhisperAudio, pe_table
from .frames import crop_face, face_to_region
from .generator import MUSETALK_CROP, MUSETALK_LICENCE, MuseTalkGenerator, load_musetalk
from .loading import MUSETALK_PIP, MuseTalkParts, find_parts, is_musetalk_folder

__all__ = [
    "MUSETALK_CROP",
    "MUSETALK_LICENCE",
    "MUSETALK_PIP",
    "MuseTalkGenerator",
    "MuseTalkParts",
    "WhisperAudio",
    "crop_face",
    "face_to_region",
    "find_parts",
    "is_musetalk_folder",
    "load_musetalk",
    "pe_table",
]
