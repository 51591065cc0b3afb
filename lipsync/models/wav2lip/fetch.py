"""Getting the published Wav2Lip weights into ``<models>/wav2lip/`` on a machine with internet.

The source is the registry's (``lipsync.models.registry.WEIGHTS``, a community mirror);
``url=`` (or ``$LIPSYNC_WAV2LIP_URL``) points elsewhere. The download is atomic
(``lipsync.models._download``) and then checked the way every checkpoint is: read with
``weights_only=True`` and matched against the architecture; a file that fails is deleted. The
only published digest comes from a third-party script and is not verified here, so a different
digest is a warning that names both, not a refusal.

The weights were trained on LRS2 and are for research / non-commercial use only.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from .._download import download, sha256_of
from ..registry import LICENCE_NOTE, WEIGHTS
from .checkpoint import read_state_dict
from ...errors import InputError, ModelError

__all__ = ["fetch_wav2lip"]


def fetch_wav2lip(name: str, models_dir: str | os.PathLike[str], *, url: str | None = None) -> Path:
    """Download the checkpoint ``name`` (``wav2lip_gan`` or ``wav2lip``) into ``models_dir/wav2lip``.

    An existing file is kept. Raises ``InputError`` for an unknown name and ``ModelError``
    offline (naming the URL and where to put the file by hand) or when the file is not a Wav2Lip
    checkpoint (it is then deleted).
    """
    if name not in WEIGHTS:
        raise InputError(f"Unknown weights {name!r}: choose one of {', '.join(WEIGHTS)}.")
    info = WEIGHTS[name]
    dest = Path(models_dir).expanduser() / info.folder / info.filename
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
    if info.listed_sha256 and source == info.url and digest != info.listed_sha256:
        warnings.warn(
            f"{info.filename} has sha256 {digest}; a third-party list gives {info.listed_sha256}. "
            f"It loaded as a valid Wav2Lip checkpoint, so it was kept.",
            stacklevel=2,
        )
    return dest
