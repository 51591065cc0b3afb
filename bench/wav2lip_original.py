"""Lay out the original Wav2Lip ``inference.py`` from a Rudrabha/Wav2Lip checkout, patched only so
that it runs with today's libraries, for the side-by-side benchmark (bench/bench_cpu.py).

    python bench/wav2lip_original.py /path/to/Wav2Lip-checkout bench/results/wav2lip_original

The checkout is never copied into this repository: get it with
``git clone https://github.com/Rudrabha/Wav2Lip``. Copied: ``inference.py``, ``audio.py``,
``hparams.py``, ``models/`` and ``face_detection/`` (imported by ``inference.py`` even with
``--box``). The patches, each checked to apply exactly once:

- ``audio.py``: ``librosa.filters.mel`` takes its sample rate and FFT size by keyword (librosa
  >= 0.10), and the STFT pads by reflection (``pad_mode='reflect'``, librosa 0.7's default, the
  one the model was trained with; newer librosa pads with zeros);
- ``inference.py``: ``cv2.cv2.ROTATE_90_CLOCKWISE`` → ``cv2.ROTATE_90_CLOCKWISE`` (OpenCV >= 4.6);
- ``face_detection/utils.py``: ``np.int`` → ``int`` (removed in NumPy 1.24).

``inference.py`` muxes its result with the ``ffmpeg`` program (and converts non-WAV audio with
it): install it (Debian/Ubuntu ``apt-get install ffmpeg``, macOS ``brew install ffmpeg``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

FILES = ("inference.py", "audio.py", "hparams.py")
FOLDERS = ("models", "face_detection")
PATCHES: dict[str, list[tuple[str, str]]] = {
    "audio.py": [
        ("librosa.filters.mel(hp.sample_rate, hp.n_fft,", "librosa.filters.mel(sr=hp.sample_rate, n_fft=hp.n_fft,"),
        ("win_length=hp.win_size)", "win_length=hp.win_size, pad_mode='reflect')"),
    ],
    "inference.py": [("cv2.cv2.ROTATE_90_CLOCKWISE", "cv2.ROTATE_90_CLOCKWISE")],
    "face_detection/utils.py": [("dtype=np.int)", "dtype=int)")],
}


def lay_out(checkout: Path, target: Path) -> Path:
    """Copy and patch the original's inference code from ``checkout`` into ``target``; returns
    the path of the patched ``inference.py``. SystemExit with the reason when the checkout is not
    the expected one."""
    missing = [name for name in (*FILES, *FOLDERS) if not (checkout / name).exists()]
    if missing:
        raise SystemExit(f"{checkout} is not a Wav2Lip checkout (missing {', '.join(missing)}); "
                         "git clone https://github.com/Rudrabha/Wav2Lip")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in FILES:
        shutil.copy2(checkout / name, target / name)
    for name in FOLDERS:
        shutil.copytree(checkout / name, target / name, ignore=shutil.ignore_patterns("*.pth", "__pycache__"))
    for name, edits in PATCHES.items():
        path = target / name
        text = path.read_text()
        for old, new in edits:
            if text.count(old) != 1:
                raise SystemExit(f"{name}: expected '{old}' once, found it {text.count(old)} times; "
                                 "is this Rudrabha/Wav2Lip's last version (2021)?")
            text = text.replace(old, new)
        path.write_text(text)
    (target / "temp").mkdir()
    return target / "inference.py"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkout", type=Path, help="a Rudrabha/Wav2Lip checkout")
    ap.add_argument("target", type=Path, help="folder to lay the patched code out in (replaced)")
    args = ap.parse_args(argv)
    print(lay_out(args.checkout, args.target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
