"""``python -m lipsync download [NAME]``: fetch published Wav2Lip weights into MODELS/wav2lip/."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._model import models_dirs

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The download command's parser."""
    from ..models.registry import LICENCE_NOTE, WEIGHTS

    p = argparse.ArgumentParser(
        prog="python -m lipsync download", description=f"Fetch published Wav2Lip weights into MODELS/wav2lip/. {LICENCE_NOTE}"
    )
    p.add_argument("name", nargs="?", default="wav2lip_gan", choices=list(WEIGHTS), help="which weights (default wav2lip_gan)")
    p.add_argument("--models-dir", help="models folder (default: $LIPSYNC_MODELS or ./models)")
    p.add_argument("--url", help="another source for the file")
    return p


def main(argv: Sequence[str]) -> int:
    """Download (checked against the registry's size and sha256); 0 when the file is ready."""
    from ..models.registry import LICENCE_NOTE
    from ..models.wav2lip.fetch import fetch_wav2lip

    args = parser().parse_args(argv)
    target = fetch_wav2lip(args.name, args.models_dir or models_dirs()[0], url=args.url)
    print(f"ready: {target}. {LICENCE_NOTE}", file=sys.stderr)
    return 0
