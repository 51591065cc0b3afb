"""Getting the published Wav2Lip weights into ``<models>/wav2lip/`` on a machine with internet.

The authors' own links moved more than once (upstream issue #739); the default source is a
community mirror on Hugging Face, and ``url=`` (or ``$LIPSYNC_WAV2LIP_URL``) points elsewhere.
The download is atomic (``lipsync.models._download``) and then checked the way every checkpoint is:
read with ``weights_only=True`` and matched against the architecture; a file that fails is
deleted. The only published digest comes from a third-party script and is not verified here,
so a different digest is a warning that names both, not a refusal.

The weights were trained on LRS2 and are for research / non-commercial use only.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from ._download import download
from .wav2lip.checkpoint import read_state_dict
from ..errors import InputError, ModelError

__all__ = ["WEIGHTS", "WeightsInfo", "fetch_wav2lip", "sha256_of"]


@dataclass(frozen=True)
class WeightsInfo:
    filename: str
    url: str
    sha256: str | None
    """Digest listed by a third party; a mismatch is reported, not fatal."""
    about: str


_MIRROR = "https://huggingface.co/Nekochu/Wav2Lip/resolve/main/"

WEIGHTS: dict[str, WeightsInfo] = {
    "wav2lip_gan": WeightsInfo(
        "wav2lip_gan.pth",
        _MIRROR + "wav2lip_gan.pth",
        "ca9ab7b7b812c0e80a6e70a5977c545a1e8a365a6c49d5e533023c034d7ac3d8",
        "better visual quality (~436 MB)",
    ),
    "wav2lip": WeightsInfo("wav2lip.pth", _MIRROR + "wav2lip.pth", None, "more accurate sync (~436 MB)"),
}

LICENCE_NOTE = "The Wav2Lip weights are for research and non-commercial use only (trained on LRS2)."


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def fetch_wav2lip(name: str, models_dir: str | os.PathLike[str], *, url: str | None = None) -> Path:
    """Download the checkpoint ``name`` (``wav2lip_gan`` or ``wav2lip``) into ``models_dir/wav2lip``.

    An existing file is kept. Raises ``ModelError`` offline, naming the URL and where to put the
    file by hand.
    """
    if name not in WEIGHTS:
        raise InputError(f"Unknown weights {name!r}: choose one of {', '.join(WEIGHTS)}.")
    info = WEIGHTS[name]
    dest = Path(models_dir).expanduser() / "wav2lip" / info.filename
    if dest.is_file():
        return dest
    source = url or os.environ.get("LIPSYNC_WAV2LIP_URL") or info.url
    try:
        download(source, dest, timeout=120.0)
    except ModelError as exc:
        raise ModelError(f"{exc} {LICENCE_NOTE}") from exc
    try:
        read_state_dict(dest)
    except ModelError:
        dest.unlink(missing_ok=True)
        raise
    digest = sha256_of(dest)
    if info.sha256 and source == info.url and digest != info.sha256:
        warnings.warn(
            f"{info.filename} has sha256 {digest}; a third-party list gives {info.sha256}. "
            f"It loaded as a valid Wav2Lip checkpoint, so it was kept.",
            stacklevel=2,
        )
    return dest
