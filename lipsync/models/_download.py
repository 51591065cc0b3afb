"""Fetch a model file once, safely, into a models folder: the one download implementation.

Why this exists: the YuNet face detector (~230 KB, MIT) is not shipped with the package; it is
downloaded on first use, the Wav2Lip weights on request (``lipsync.models.wav2lip.fetch``), and
models made of several files (MuseTalk 1.5: ``fetch_bundle``) the same way, file by file.
What may be fetched is listed in ``lipsync.models.registry``. A download must never leave a
half-written or tampered file under the final name (the next run would trust it), so it goes to
a temporary file in the target folder, is checked against a known sha256, and is renamed into
place atomically (``lipsync.media.atomic``).

Offline machines get one sentence that says which file, from where, and where to put it by hand.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
import warnings
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..errors import ModelError
from ..media.atomic import atomic_path
from .registry import BUNDLES, REGISTRY, RemoteFile, remote_file

__all__ = ["REGISTRY", "RemoteFile", "bundle_files", "download", "ensure_file", "fetch_bundle", "sha256_of"]

_CHUNK = 1 << 16


def ensure_file(key: str, folder: str | os.PathLike[str]) -> Path:
    """The local path of registry file ``key`` in ``folder``, downloading it if it is absent.

    An existing file is trusted when its size matches (hashing on every start is not worth it
    for files that were verified when they were written).
    """
    spec = remote_file(key)
    dest = Path(folder).expanduser() / spec.filename
    if dest.is_file() and (spec.size is None or dest.stat().st_size == spec.size):
        return dest
    return download(spec.url, dest, sha256=spec.sha256)


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` atomically, checking ``sha256`` when given.

    The bytes go to a temporary file next to ``dest`` (same filesystem, so the final rename is
    atomic); on any failure the temporary file is removed and ``dest`` is left as it was.
    Raises ModelError naming the file, the URL and where to put the file by hand.
    """
    target = Path(dest).expanduser()
    by_hand = f"download it by hand from {url} and save it as {target}"
    try:
        with atomic_path(target) as temp:
            with open(temp, "wb") as out:
                digest = _copy_url(url, out, timeout, target, by_hand)
            if sha256 is not None and digest != sha256.lower():
                raise ModelError(
                    f"The download of {target.name} from {url} has sha256 {digest}, expected "
                    f"{sha256.lower()}, so it was not kept; retry later or {by_hand}."
                )
    except OSError as exc:
        raise ModelError(
            f"Cannot write {target.name} into {target.parent} ({exc}); {by_hand}."
        ) from exc
    return target


def _copy_url(url: str, out: BinaryIO, timeout: float, target: Path, by_hand: str) -> str:
    """Stream ``url`` into the open file ``out``; return the sha256 hex digest of the bytes."""
    hasher = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed URLs)
            while chunk := response.read(_CHUNK):
                hasher.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise ModelError(
            f"Could not download {target.name}: {url} answered HTTP {exc.code}; {by_hand}."
        ) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelError(
            f"Could not download {target.name} from {url} ({reason}; is this machine offline?); "
            f"{by_hand}."
        ) from exc
    return hasher.hexdigest()


def sha256_of(path: Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def bundle_files(name: str, models_dir: str | os.PathLike[str]) -> list[tuple[RemoteFile, Path]]:
    """Each file of the bundle ``name`` (``registry.BUNDLES``) with its place in ``models_dir``."""
    if name not in BUNDLES:
        raise ModelError(f"Unknown model {name!r}; known: {', '.join(sorted(BUNDLES))}.")
    root = Path(models_dir).expanduser()
    return [(spec, root / spec.folder / spec.filename) for spec in (REGISTRY[k] for k in BUNDLES[name])]


def _mirrored(spec: RemoteFile, name: str, base_url: str) -> str:
    """``spec``'s URL on a mirror laid out like the bundle's folder (``base/musetalkV15/unet.pth``)."""
    relative = PurePosixPath(spec.folder).relative_to(name) / spec.filename
    return base_url.rstrip("/") + "/" + str(relative)


def fetch_bundle(
    name: str, models_dir: str | os.PathLike[str], *, base_url: str | None = None, timeout: float = 120.0
) -> list[Path]:
    """Every file of the bundle ``name`` into ``models_dir`` (``<models_dir>/<folder>/<filename>``).

    Files already there are kept. Each download is atomic and checked like ``download`` (a file
    is either complete under its final name or absent), so an interrupted run leaves only whole
    files and the next run fetches what is still missing. ``base_url``: a mirror laid out like
    the bundle's folder instead of the registry's sources. A third-party digest that differs is
    a warning (``RemoteFile.listed_sha256``).

    Raises ModelError after trying every file, listing each one still missing: its URL and the
    path to save it under by hand (offline machines).
    """
    files = bundle_files(name, models_dir)
    failed: list[tuple[str, Path, str]] = []
    for spec, dest in files:
        if dest.is_file():
            continue
        url = _mirrored(spec, name, base_url) if base_url else spec.url
        try:
            download(url, dest, sha256=spec.sha256, timeout=timeout)
        except ModelError as exc:
            failed.append((url, dest, str(exc)))
            continue
        if spec.listed_sha256 and not base_url:
            digest = sha256_of(dest)
            if digest != spec.listed_sha256:
                warnings.warn(f"{dest} has sha256 {digest}; a third-party page lists {spec.listed_sha256}. It was kept: "
                              "it is checked against its config when the model loads.", stacklevel=2)
    if failed:
        lines = "\n".join(f"  {url}\n    -> {dest}" for url, dest, _ in failed)
        raise ModelError(
            f"{len(failed)} of the {len(files)} files of {name} could not be downloaded (first: {failed[0][2]}). "
            f"Download each of these by hand and save it at the path below it:\n{lines}"
        )
    return [dest for _, dest in files]
