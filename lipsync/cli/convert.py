"""``python -m lipsync convert CKPT [-o OUT]``: a Wav2Lip .pth to .safetensors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The convert command's parser."""
    p = argparse.ArgumentParser(
        prog="python -m lipsync convert", description="Convert a Wav2Lip .pth to .safetensors (weights only, ~145 MB)."
    )
    p.add_argument("checkpoint")
    p.add_argument("-o", "--output", help="default: the same name with .safetensors")
    return p


def main(argv: Sequence[str]) -> int:
    """Convert; 0 when the file was written."""
    from ..models.wav2lip.checkpoint import convert_to_safetensors

    args = parser().parse_args(argv)
    target = convert_to_safetensors(args.checkpoint, args.output)
    print(f"wrote {target}", file=sys.stderr)
    return 0
