"""Make the demo media: a talking-head clip from scikit-image's public-domain astronaut photo
(slight zoom, tilt and pan so detection and tracking have work to do) and a spoken sentence
from espeak-ng. Usage: python scripts/make_demo_media.py OUT_DIR
Needs scikit-image (pip install scikit-image) and espeak-ng (apt-get install espeak-ng)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from lipsync.media.video import VideoWriter

SENTENCE = "Hello! This sentence was never spoken on camera. Only the mouth is new; every other pixel is as filmed."


def make_video(path: Path, seconds: float = 5.0, fps: int = 25) -> None:
    try:
        from skimage import data
    except ImportError:
        sys.exit("make_demo_media: pip install scikit-image (it ships the public-domain astronaut photo)")
    photo = data.astronaut()[:, :, :3]  # RGB 512x512
    crop = photo[20:480, 40:500]
    base = cv2.resize(crop, (512, 512), interpolation=cv2.INTER_AREA)
    with VideoWriter(path, Fraction(fps)) as writer:
        for i in range(int(seconds * fps)):
            t = i / fps
            angle = 1.5 * np.sin(2 * np.pi * t / 4.0)
            scale = 1.0 + 0.02 * (1 - np.cos(2 * np.pi * t / 5.0))
            m = cv2.getRotationMatrix2D((256, 256), angle, scale)
            m[0, 2] += 4 * np.sin(2 * np.pi * t / 3.0)
            writer.write(cv2.warpAffine(base, m, (512, 512), borderMode=cv2.BORDER_REFLECT))


def make_speech(path: Path) -> None:
    espeak = shutil.which("espeak-ng") or shutil.which("espeak")
    if espeak is None:
        sys.exit("make_demo_media: apt-get install espeak-ng (or pass your own VIDEO and AUDIO to scripts/demo.sh)")
    subprocess.run([espeak, "-w", str(path), SENTENCE], check=True)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo")
    out.mkdir(parents=True, exist_ok=True)
    make_video(out / "face.mp4")
    make_speech(out / "speech.wav")
    print(f"wrote {out / 'face.mp4'} and {out / 'speech.wav'}")
