"""``python -m lipsync download [NAME]``: fetch published weights into the models folder.

``wav2lip_gan`` / ``wav2lip``: one checkpoint into MODELS/wav2lip/. ``musetalk``: MuseTalk 1.5's
seven files (UNet, sd-vae-ft-mse, whisper-tiny) into MODELS/musetalk/, each atomically; offline,
the error lists every missing file with its URL and where it goes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._model import models_dirs

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The download command's parser."""
    from ..models.registry import BUNDLES, LICENCE_NOTE, MUSETALK_LICENCE_NOTE, WEIGHTS

    p = argparse.ArgumentParser(
        prog="python -m lipsync download",
        description=f"Fetch published weights into the models folder: Wav2Lip into MODELS/wav2lip/, or MuseTalk 1.5 "
        f"into MODELS/musetalk/. {LICENCE_NOTE} {MUSETALK_LICENCE_NOTE}",
    )
    p.add_argument("name", nargs="?", default="wav2lip_gan", choices=[*WEIGHTS, *BUNDLES],
                   help="which weights (default wav2lip_gan)")
    p.add_argument("--models-dir", help="models folder (default: $LIPSYNC_MODELS or ./models)")
    p.add_argument("--url", help="another source: the file (Wav2Lip), or a mirror of the musetalk/ folder's layout "
                   "(musetalkV15/, sd-vae/, whisper/) for MuseTalk")
    return p


def main(argv: Sequence[str]) -> int:
    """Download (checked against the registry); 0 when the files are ready."""
    from ..models.registry import BUNDLES, LICENCES

    args = parser().parse_args(argv)
    models_dir = args.models_dir or models_dirs()[0]
    if args.name in BUNDLES:
        from ..models._download import fetch_bundle

        paths = fetch_bundle(args.name, models_dir, base_url=args.url)
        print(f"ready: {len(paths)} files under {paths[0].parents[1]}. {LICENCES[args.name]}", file=sys.stderr)
        return 0
    from ..models.wav2lip.fetch import fetch_wav2lip

    target = fetch_wav2lip(args.name, models_dir, url=args.url)
    print(f"ready: {target}. {LICENCES['wav2lip']}", file=sys.stderr)
    return 0
