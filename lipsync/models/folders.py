"""Where model files are: the one lookup of models folders, for the CLI, the detectors and tests.

A models folder holds one sub-folder per kind (``wav2lip/``, ``musetalk/``, ``facedetect/``,
``insightface/``, ``facerestore_models/``: ComfyUI's layout). ``musetalk/`` holds MuseTalk's own
layout (``musetalkV15/``, ``sd-vae/``, ``whisper/``); a folder laid out like MuseTalk's own
``models/`` (those three directly inside) is found too. Without an explicit folder they are searched in
this order (``models_dirs``):

1. ``$LIPSYNC_MODELS``, when set;
2. ``./models`` in the working directory;
3. the ``models/`` folder of this checkout (next to the ``lipsync`` package);
4. the user cache, ``~/.cache/lipsync/models`` (where downloads go when there is no ``./models``).

A file is downloaded into ``default_models_dir()``: ``$LIPSYNC_MODELS``, else ``./models`` when
it exists, else the user cache. Inside ComfyUI the host's folders are used instead (the nodes
ask ``folder_paths``); nothing here is consulted there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ModelError

__all__ = [
    "CHECKPOINT_NAMES",
    "MUSETALK_FOLDER",
    "default_models_dir",
    "find_checkpoint",
    "find_musetalk",
    "find_weights",
    "models_dirs",
    "user_cache_dir",
]

CHECKPOINT_NAMES = ("wav2lip_gan.pth", "wav2lip.pth", "wav2lip_gan.safetensors", "wav2lip.safetensors")
"""The Wav2Lip checkpoints looked for by name, the preferred first."""
_CHECKPOINT_SUFFIXES = (".pth", ".safetensors", ".onnx")
MUSETALK_FOLDER = "musetalk"
"""The models sub-folder of MuseTalk 1.5 (ComfyUI: ``models/musetalk``)."""


def user_cache_dir() -> Path:
    """``~/.cache/lipsync/models``: the models folder of last resort."""
    return Path.home() / ".cache" / "lipsync" / "models"


def models_dirs() -> list[Path]:
    """The models folders searched, in order (see the module docstring), resolved, each once.
    Folders that do not exist are listed too (a search names where it looked)."""
    dirs = []
    if os.environ.get("LIPSYNC_MODELS"):
        dirs.append(Path(os.environ["LIPSYNC_MODELS"]).expanduser())
    dirs.append(Path.cwd() / "models")
    dirs.append(Path(__file__).resolve().parents[2] / "models")
    dirs.append(user_cache_dir())
    return list(dict.fromkeys(d.resolve() for d in dirs))


def default_models_dir() -> Path:
    """Where models go when the caller names no folder: ``$LIPSYNC_MODELS``, else ./models when it
    exists (a checkout of this project), else the user cache."""
    env = os.environ.get("LIPSYNC_MODELS")
    if env:
        return Path(env).expanduser()
    local = Path.cwd() / "models"
    if local.is_dir():
        return local
    return user_cache_dir()


def find_weights(
    kind_folder: str,
    names: Sequence[str],
    explicit: str | os.PathLike[str] | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    *,
    suffixes: Sequence[str] = (),
    what: str = "model file",
    help_text: str = "",
) -> Path:
    """The weights file to use: ``explicit`` as given (not checked here: the loader says what is
    wrong with it), else the first of ``names`` in ``<base>/<kind_folder>``, else the first file
    there (by name) ending in one of ``suffixes``; ``<base>`` is ``models_dir`` when given, then
    each of ``models_dirs()``.

    Raises ModelError "No {what} found (looked in …). {help_text}" when no folder holds one.
    """
    if explicit:
        return Path(explicit)
    searched = []
    bases = ([Path(models_dir).expanduser().resolve()] if models_dir else []) + models_dirs()
    for base in dict.fromkeys(bases):
        folder = base / kind_folder
        searched.append(str(folder))
        for name in names:
            if (folder / name).is_file():
                return folder / name
        others = sorted(p for p in folder.glob("*") if p.suffix in suffixes) if folder.is_dir() else []
        if others:
            return others[0]
    raise ModelError(f"No {what} found (looked in {', '.join(searched)}). {help_text}")


def find_checkpoint(explicit: str | None, models_dir: str | None = None) -> Path:
    """The Wav2Lip checkpoint to use: ``explicit``, else a known name (``CHECKPOINT_NAMES``), else
    any .pth/.safetensors/.onnx, in a ``wav2lip`` folder of the models folders."""
    from .wav2lip.checkpoint import CHECKPOINT_HELP  # imports torch: only when a search runs

    return find_weights(
        "wav2lip", CHECKPOINT_NAMES, explicit, models_dir,
        suffixes=_CHECKPOINT_SUFFIXES, what="Wav2Lip checkpoint", help_text=CHECKPOINT_HELP,
    )


def find_musetalk(explicit: str | os.PathLike[str] | None, models_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding MuseTalk 1.5's parts (``musetalkV15/``, ``sd-vae/``, ``whisper/``):
    ``explicit`` as given (the loader says what is wrong with it; its ``musetalkV15`` folder or
    ``unet.pth`` stand for the folder above them), else the first of
    ``<base>/musetalk`` and ``<base>`` that holds all of them, for ``<base>`` = ``models_dir``
    then each of ``models_dirs()``.

    Raises ModelError naming the folders searched and the command that fetches the files.
    """
    from .musetalk.loading import FOLDER_HELP, is_musetalk_folder  # imports torch: only when a search runs

    if explicit:
        path = Path(explicit).expanduser()
        if path.name == "unet.pth" and path.is_file():
            return path.parents[1]
        return path.parent if (path / "unet.pth").is_file() else path
    searched = []
    bases = ([Path(models_dir).expanduser().resolve()] if models_dir else []) + models_dirs()
    for base in dict.fromkeys(bases):
        for folder in (base / MUSETALK_FOLDER, base):
            if is_musetalk_folder(folder):
                return folder
        searched.append(str(base / MUSETALK_FOLDER))
    raise ModelError(
        f"No MuseTalk 1.5 models found (looked in {', '.join(searched)}). {FOLDER_HELP} "
        f"Get them with: python -m lipsync download musetalk"
    )
