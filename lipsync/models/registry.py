"""The one registry of files the library may download: where from, what they must hash to,
how big they are, under which licence, and where they go inside a models folder.

Only files with a known source are listed: the YuNet face detector (fetched on first use by
``lipsync.faces``), the published Wav2Lip weights and MuseTalk 1.5's seven files
(``python -m lipsync download [wav2lip_gan | wav2lip | musetalk]``). The face
restorers (GFPGAN, RestoreFormer, CodeFormer) are put in place by hand: see
``lipsync.restore.RESTORE_HELP``.

The Wav2Lip authors' own links moved more than once (upstream issue #739); their source here is a
community mirror on Hugging Face. The only digest published for them comes from a third-party
script and is not verified, so it is ``listed_sha256`` (a mismatch is a warning) and not
``sha256`` (a mismatch is a refusal). Getting the files: ``lipsync.models._download``
(``ensure_file``, ``download``, ``fetch_bundle``) and ``lipsync.models.wav2lip.fetch`` (``fetch_wav2lip``).

MuseTalk 1.5 comes from three Hugging Face repositories, laid out as MuseTalk's own
``download_weights.sh`` lays them out, under ``<models>/musetalk/``: the UNet from
TMElyralab/MuseTalk (``musetalkV15/``), the VAE from stabilityai/sd-vae-ft-mse (``sd-vae/``) and
whisper-tiny from openai/whisper-tiny (``whisper/``). None of the three repositories publishes a
digest beside its files except through Git LFS pointers; the only one found is the VAE's, read from
a copy of stabilityai's commit a3d9d34 on the hub (a third party's page), so it is ``listed_sha256``.
Sizes are not pinned (the hub pages round them: 3.4 GB, 335 MB, 151 MB): every part is checked by
loading it strictly against its config instead (``lipsync.models.musetalk.loading``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelError

__all__ = ["BUNDLES", "LICENCES", "LICENCE_NOTE", "MUSETALK_LICENCE_NOTE", "REGISTRY", "WEIGHTS", "RemoteFile", "remote_file"]


@dataclass(frozen=True)
class RemoteFile:
    """A file the library may fetch: where from, what it must hash to, and under which licence."""

    filename: str
    url: str
    sha256: str | None
    """Expected hex digest; None only for files whose digest is not pinned (then not checked)."""
    size: int | None
    """Bytes; None when not pinned (then any existing file is trusted)."""
    license: str
    folder: str = ""
    """Where the file goes, relative to the models folder (``facedetect``, ``wav2lip``)."""
    note: str = ""
    """What the file is for, in a few words (shown to users choosing one)."""
    listed_sha256: str | None = None
    """A digest published by a third party, not verified by this project: a mismatch is reported,
    not fatal."""


_WAV2LIP_MIRROR = "https://huggingface.co/Nekochu/Wav2Lip/resolve/main/"
_WAV2LIP_LICENCE = "research and non-commercial use only (trained on LRS2)"

REGISTRY: dict[str, RemoteFile] = {
    # Digest and size from the Git LFS pointer of opencv_zoo's file (one version since
    # "update yunet to v2", June 2023). The model is MIT licensed (libfacedetection.train).
    "yunet_2023mar": RemoteFile(
        filename="face_detection_yunet_2023mar.onnx",
        url=(
            "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
            "face_detection_yunet_2023mar.onnx"
        ),
        sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
        size=232589,
        license="MIT",
        folder="facedetect",
        note="YuNet face detector (~230 KB), downloaded on first use",
    ),
    "wav2lip_gan": RemoteFile(
        filename="wav2lip_gan.pth",
        url=_WAV2LIP_MIRROR + "wav2lip_gan.pth",
        sha256=None,
        size=None,
        license=_WAV2LIP_LICENCE,
        folder="wav2lip",
        note="better visual quality (~436 MB)",
        listed_sha256="ca9ab7b7b812c0e80a6e70a5977c545a1e8a365a6c49d5e533023c034d7ac3d8",
    ),
    "wav2lip": RemoteFile(
        filename="wav2lip.pth",
        url=_WAV2LIP_MIRROR + "wav2lip.pth",
        sha256=None,
        size=None,
        license=_WAV2LIP_LICENCE,
        folder="wav2lip",
        note="more accurate sync (~436 MB)",
    ),
}

_HF = "https://huggingface.co/"
_MUSETALK = _HF + "TMElyralab/MuseTalk/resolve/main/musetalkV15/"
_SD_VAE = _HF + "stabilityai/sd-vae-ft-mse/resolve/main/"
_WHISPER = _HF + "openai/whisper-tiny/resolve/main/"
_MUSETALK_LICENCE = (
    "MuseTalk: code MIT; the authors release the weights for any purpose, commercial included "
    "(TMElyralab/MuseTalk README)"
)
_SD_VAE_LICENCE = "MIT (stabilityai/sd-vae-ft-mse model card)"
_WHISPER_LICENCE = "Apache-2.0 (openai/whisper-tiny model card; the whisper code is MIT)"

REGISTRY.update({
    "musetalk_unet": RemoteFile("unet.pth", _MUSETALK + "unet.pth", None, None, _MUSETALK_LICENCE,
                                folder="musetalk/musetalkV15", note="MuseTalk 1.5 UNet (~3.4 GB)"),
    "musetalk_unet_config": RemoteFile("musetalk.json", _MUSETALK + "musetalk.json", None, None, _MUSETALK_LICENCE,
                                       folder="musetalk/musetalkV15", note="its diffusers config"),
    "sd_vae_config": RemoteFile("config.json", _SD_VAE + "config.json", None, None, _SD_VAE_LICENCE,
                                folder="musetalk/sd-vae", note="sd-vae-ft-mse config"),
    "sd_vae": RemoteFile("diffusion_pytorch_model.bin", _SD_VAE + "diffusion_pytorch_model.bin", None, None,
                         _SD_VAE_LICENCE, folder="musetalk/sd-vae", note="sd-vae-ft-mse weights (~335 MB)",
                         listed_sha256="1b4889b6b1d4ce7ae320a02dedaeff1780ad77d415ea0d744b476155c6377ddc"),
    "whisper_config": RemoteFile("config.json", _WHISPER + "config.json", None, None, _WHISPER_LICENCE,
                                 folder="musetalk/whisper", note="whisper-tiny config"),
    "whisper": RemoteFile("pytorch_model.bin", _WHISPER + "pytorch_model.bin", None, None, _WHISPER_LICENCE,
                          folder="musetalk/whisper", note="whisper-tiny weights (~151 MB; only the encoder is used)"),
    "whisper_preprocessor": RemoteFile("preprocessor_config.json", _WHISPER + "preprocessor_config.json", None, None,
                                       _WHISPER_LICENCE, folder="musetalk/whisper",
                                       note="whisper-tiny feature extractor config"),
})

WEIGHTS: dict[str, RemoteFile] = {key: REGISTRY[key] for key in ("wav2lip_gan", "wav2lip")}
"""The Wav2Lip checkpoints ``python -m lipsync download`` offers, the default first."""

LICENCE_NOTE = "The Wav2Lip weights are for research and non-commercial use only (trained on LRS2)."

BUNDLES: dict[str, tuple[str, ...]] = {
    "musetalk": ("musetalk_unet", "musetalk_unet_config", "sd_vae_config", "sd_vae", "whisper_config", "whisper",
                 "whisper_preprocessor"),
}
"""Models made of several files, fetched together (``python -m lipsync download musetalk``)."""

MUSETALK_LICENCE_NOTE = (
    "MuseTalk 1.5: code MIT, weights released by its authors for any purpose including commercial use; "
    "sd-vae-ft-mse MIT; whisper-tiny Apache-2.0."
)

LICENCES: dict[str, str] = {"wav2lip": LICENCE_NOTE, "musetalk": MUSETALK_LICENCE_NOTE}
"""What each model family's weights allow, in one sentence (CLI messages, README table)."""


def remote_file(key: str) -> RemoteFile:
    """The registry entry ``key``; ModelError listing the known keys when there is none."""
    if key not in REGISTRY:
        raise ModelError(f"Unknown model file {key!r}; known: {', '.join(sorted(REGISTRY))}.")
    return REGISTRY[key]
