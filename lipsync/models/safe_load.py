"""Reading weights files without running what they contain: the one safe checkpoint reader.

``.safetensors`` is plain data; everything else is a torch pickle (``torch.save``'s zip archive
or the legacy format) read with ``weights_only=True``, whose unpickler refuses any pickle that
would build arbitrary objects. ``mmap=True`` is not used: the legacy format (the published
Wav2Lip files) cannot be mapped.

Every failure is a ``ModelError`` with one sentence that tells the three cases apart, because
the fix differs: a file that is missing or empty (put it there), a file that is truncated,
garbled or not a weights file at all (download it again: an error page saved instead, a Git LFS
pointer), and a file whose pickle asks to build objects or run code (refused: use the original
or a .safetensors). The sentences are parametrised by what the file should be, so the Wav2Lip
loader and the face restorers say the same thing in their own words.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import re
import struct
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelError

if TYPE_CHECKING:
    import torch

__all__ = ["load_pickle", "load_safetensors", "load_weights", "require_file"]

# A torch checkpoint is a zip archive (torch >= 1.6) or a legacy pickle (protocol 2+ starts with
# the PROTO opcode 0x80). Anything else (a web page saved instead of the file, a Git LFS pointer,
# an ONNX model renamed .pth) is reported as "not a checkpoint", not as an unsafe pickle.
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80

# What the weights-only unpickler and the legacy reader raise on bytes that are cut short or
# garbled (struct.error, IndexError and KeyError come from reading a half-written pickle).
_CORRUPT_ERRORS = (
    EOFError,
    RuntimeError,
    zipfile.BadZipFile,
    ValueError,
    OSError,
    IndexError,
    KeyError,
    TypeError,
    AssertionError,
    struct.error,
)


def require_file(path: str | os.PathLike[str], what: str, help_text: str) -> Path:
    """``path`` as a Path when it is a non-empty file; else ModelError naming ``what`` the file
    should be (e.g. "Wav2Lip checkpoint") followed by ``help_text`` (where to get one)."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{what} not found: {p}. {help_text}")
    if p.stat().st_size == 0:
        raise ModelError(f"{what} {p.name} is empty (0 bytes). Download it again. {help_text}")
    return p


def _corrupt(path: Path, detail: str, help_text: str) -> ModelError:
    return ModelError(
        f"Cannot read {path.name} ({path.stat().st_size:,} bytes): the file is truncated or corrupt "
        f"({detail}). Download it again. {help_text}"
    )


def _first_bytes(path: Path, n: int = 16) -> bytes:
    with path.open("rb") as f:
        return f.read(n)


_PICKLE_OPCODES = frozenset(ord(op.code) for op in pickletools.opcodes)
_UNSUPPORTED = re.compile(r"Unsupported operand (\d+)")


def _is_refusal(exc: pickle.UnpicklingError) -> bool:
    """True when the weights-only unpickler refused a real pickle instruction (one that builds
    objects, or a newer protocol's framing it does not take); False when it met bytes that no
    pickle has (garbage) or a length that runs past the data."""
    text = str(exc)
    if "String is too long" in text:
        return False
    operand = _UNSUPPORTED.search(text)
    return operand is None or int(operand.group(1)) in _PICKLE_OPCODES


def load_pickle(path: Path, kind: str = "checkpoint", help_text: str = "") -> Any:
    """What a torch pickle holds (tensors on the CPU, in dicts/lists), read weights-only.

    ``kind`` names the file in the sentences ("not a PyTorch checkpoint", "use the original
    checkpoint"); ``help_text`` follows the "download it again" advice. Raises ModelError:
    "truncated or corrupt" for cut or garbled bytes and files that are not torch pickles,
    "Refused to load" for a pickle that would build objects or run code.
    """
    head = _first_bytes(path)
    if _ZIP_MAGIC.startswith(head):
        raise _corrupt(path, "it ends within its first bytes", help_text)
    if not (head.startswith(_ZIP_MAGIC) or head[0] == _PICKLE_PROTO):
        shown = head.decode("ascii", "replace").replace("\n", " ").strip()
        raise _corrupt(
            path, f"not a PyTorch {kind}: it starts with {shown!r}, perhaps an error page saved instead", help_text
        )
    import torch  # here, not at the top: a job that reads no torch file never loads it

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not _is_refusal(exc):
            raise _corrupt(path, "UnpicklingError: invalid data", help_text) from exc
        raise ModelError(
            f"Refused to load {path.name}: it is not a plain weights file (its pickle asks to "
            f"build objects or run code, which safe loading does not allow). Use the original "
            f"{kind}, or convert a trusted one to .safetensors."
        ) from exc
    except _CORRUPT_ERRORS as exc:
        first_line = str(exc).splitlines()[0] if str(exc).strip() else "the data ends early"
        name = "struct.error" if isinstance(exc, struct.error) else type(exc).__name__
        raise _corrupt(path, f"{name}: {first_line}", help_text) from exc


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, on the CPU; ModelError when it is not valid."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(
            f"Cannot read {path.name}: not a valid .safetensors file ({exc}). Download or "
            f"convert it again."
        ) from exc


def load_weights(path: Path, kind: str = "checkpoint", help_text: str = "") -> Any:
    """``load_safetensors`` for a ``.safetensors`` name (any case), else ``load_pickle``.
    Check the file with ``require_file`` first (an empty file has no first byte to sniff)."""
    if path.suffix.lower() == ".safetensors":
        return load_safetensors(path)
    return load_pickle(path, kind, help_text)
