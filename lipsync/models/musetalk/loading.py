"""Finding, checking and loading MuseTalk 1.5's published files.

The layout is the one MuseTalk's ``download_weights.sh`` makes (``<models>`` is any folder)::

    <models>/musetalkV15/unet.pth        plain UNet2DConditionModel state dict (~3.4 GB)
    <models>/musetalkV15/musetalk.json   its diffusers config
    <models>/sd-vae/config.json          stabilityai/sd-vae-ft-mse (AutoencoderKL)
    <models>/sd-vae/diffusion_pytorch_model.bin | .safetensors
    <models>/whisper/config.json         openai/whisper-tiny (only the encoder is used)
    <models>/whisper/pytorch_model.bin | model.safetensors
    <models>/whisper/preprocessor_config.json

Every module is built from the config file next to its weights, so the reduced test fixture and
the real published files go through the same code. Weights are read safely (``torch.load`` with
``weights_only=True``, or safetensors) and loaded strictly: a file of another model is reported
as a ``ModelError`` that names the file and what was found, never half-loaded.

diffusers and transformers are an optional extra (``pip install "comfyui-resync[musetalk]"``);
without them ``require_diffusers`` / ``require_transformers`` raise ``DependencyError``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...errors import DependencyError, ModelError

__all__ = [
    "MUSETALK_PIP",
    "MuseTalkParts",
    "build_unet",
    "build_vae",
    "build_whisper_encoder",
    "check_parts",
    "check_state",
    "find_parts",
    "is_musetalk_folder",
    "load_unet",
    "load_vae",
    "load_whisper",
    "rename_legacy_vae_keys",
]

MUSETALK_PIP = 'pip install "comfyui-resync[musetalk]"  (or: pip install "diffusers>=0.30" "transformers>=4.39")'
SCALING_FACTOR = 0.18215
"""sd-vae-ft-mse's latent scale; its config has no ``scaling_factor`` key, diffusers' default is this."""

UNET_IN_CHANNELS = 8  # masked-face latent (4) + reference latent (4)
UNET_OUT_CHANNELS = 4
AUDIO_DIM = 384  # whisper-tiny's d_model: the UNet's cross-attention width
VAE_DOWNSAMPLING = 8  # 256² face -> 32² latent

FOLDER_HELP = (
    "MuseTalk 1.5 needs musetalkV15/unet.pth + musetalk.json, sd-vae/ (config.json + "
    "diffusion_pytorch_model.bin) and whisper/ (config.json, pytorch_model.bin, "
    "preprocessor_config.json), as MuseTalk's download_weights.sh lays them out."
)


def require_diffusers() -> Any:
    try:
        import diffusers
    except ImportError as exc:
        raise DependencyError(f"MuseTalk needs diffusers, which is not installed: {MUSETALK_PIP}") from exc
    return diffusers


def require_transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise DependencyError(f"MuseTalk needs transformers, which is not installed: {MUSETALK_PIP}") from exc
    return transformers


@dataclass(frozen=True)
class MuseTalkParts:
    """Where each published file is (a models folder resolves to this with ``find_parts``)."""

    unet: Path
    unet_config: Path
    vae_dir: Path
    whisper_dir: Path


def _first_existing(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def find_parts(models_dir: str | os.PathLike[str]) -> MuseTalkParts:
    """The files of ``models_dir`` in MuseTalk's layout; ``ModelError`` naming the first missing one.

    A folder holding only MuseTalk 1.0's UNet (``musetalk/pytorch_model.bin``) is refused by name:
    1.0 and 1.5 have the same shapes, so the layout is the only way to tell them apart.
    """
    root = Path(models_dir)
    if not root.is_dir():
        raise ModelError(f"MuseTalk models folder not found: {root}. {FOLDER_HELP}")
    unet = root / "musetalkV15" / "unet.pth"
    if not unet.is_file():
        v10 = root / "musetalk" / "pytorch_model.bin"
        if v10.is_file():
            raise ModelError(
                f"{root} holds MuseTalk 1.0's UNet ({v10}); this model family is MuseTalk 1.5 and needs "
                f"{unet} (download musetalkV15/ from TMElyralab/MuseTalk)."
            )
        raise ModelError(f"Missing {unet}. {FOLDER_HELP}")
    parts = MuseTalkParts(unet, root / "musetalkV15" / "musetalk.json", root / "sd-vae", root / "whisper")
    check_parts(parts)
    return parts


def check_parts(parts: MuseTalkParts) -> None:
    if parts.unet.name == "pytorch_model.bin" and parts.unet.parent.name == "musetalk":
        raise ModelError(f"{parts.unet} is MuseTalk 1.0's UNet; this model family needs 1.5's musetalkV15/unet.pth.")
    for path in (parts.unet, parts.unet_config, parts.vae_dir / "config.json", parts.whisper_dir / "config.json",
                 parts.whisper_dir / "preprocessor_config.json"):
        if not path.is_file():
            raise ModelError(f"Missing {path}. {FOLDER_HELP}")
    if _vae_weights(parts.vae_dir) is None:
        raise ModelError(f"Missing {parts.vae_dir / 'diffusion_pytorch_model.bin'} (or .safetensors). {FOLDER_HELP}")
    if _whisper_weights(parts.whisper_dir) is None:
        raise ModelError(f"Missing {parts.whisper_dir / 'pytorch_model.bin'} (or model.safetensors). {FOLDER_HELP}")


def is_musetalk_folder(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds a complete MuseTalk 1.5 layout (files present; contents unchecked)."""
    try:
        find_parts(path)
    except ModelError:
        return False
    return True


def _vae_weights(folder: Path) -> Path | None:
    return _first_existing(folder, ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"))


def _whisper_weights(folder: Path) -> Path | None:
    return _first_existing(folder, ("model.safetensors", "pytorch_model.bin"))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"Cannot read {path}: {exc}. Download it again.") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a config (a JSON object was expected, found {type(data).__name__}).")
    return data


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``path``, safely: safetensors, or a pickle holding only tensors."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many untyped errors for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"Cannot read {path} as weights: {first}. The file may be truncated: download it again.") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} does not hold a plain state dict (name -> tensor); found {type(state).__name__}.")
    return state


def check_state(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """``ModelError`` unless ``state`` has exactly ``module``'s names and shapes (the first
    differences are named)."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = [k for k in expected if k in found and expected[k] != found[k]]
    if missing or extra or wrong:
        details = []
        if wrong:
            details.append("shape " + ", ".join(f"{k} {found[k]} (expected {expected[k]})" for k in wrong[:2]))
        if missing:
            details.append(f"{len(missing)} missing tensors (e.g. {missing[0]})")
        if extra:
            details.append(f"{len(extra)} unexpected tensors (e.g. {extra[0]})")
        raise ModelError(f"{path} is not {what}: {'; '.join(details)}.")


# ---- UNet -------------------------------------------------------------------------------------

def build_unet(config: dict[str, Any], path: Path) -> torch.nn.Module:
    """An empty ``UNet2DConditionModel`` from MuseTalk's config, after checking it is one.

    Refused: an SD UNet (4 input channels, 768/1024-d text conditioning) or anything whose
    input is not masked + reference latents (8) or whose conditioning is not whisper-tiny (384).
    """
    diffusers = require_diffusers()
    got = {k: config.get(k) for k in ("in_channels", "out_channels", "cross_attention_dim")}
    want = {"in_channels": UNET_IN_CHANNELS, "out_channels": UNET_OUT_CHANNELS, "cross_attention_dim": AUDIO_DIM}
    if got != want or config.get("_class_name", "UNet2DConditionModel") != "UNet2DConditionModel":
        raise ModelError(
            f"{path} is not MuseTalk's UNet config: found {config.get('_class_name')} with {got}; "
            f"MuseTalk 1.5 has UNet2DConditionModel with {want}."
        )
    try:
        return diffusers.UNet2DConditionModel.from_config(config)
    except Exception as exc:  # diffusers raises ValueError/TypeError/KeyError for odd configs
        raise ModelError(f"Cannot build a UNet from {path}: {exc}") from exc


def load_unet(parts: MuseTalkParts) -> torch.nn.Module:
    module = build_unet(_read_json(parts.unet_config), parts.unet_config)
    state = _read_state(parts.unet)
    check_state(module, state, parts.unet, f"the UNet described by {parts.unet_config.name}")
    module.load_state_dict(state, strict=True)
    return module.eval().requires_grad_(False)


# ---- VAE --------------------------------------------------------------------------------------

_LEGACY_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def rename_legacy_vae_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mid-block attention keys of diffusers < 0.15 (``…attentions.0.query.weight``) under the
    current names (``…attentions.0.to_q.weight``); 1×1-conv shaped weights become linear ones."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        head, _, leaf = key.rpartition(".")
        prefix, _, name = head.rpartition(".")
        if ".attentions." in key and name in _LEGACY_ATTENTION:
            key = f"{prefix}.{_LEGACY_ATTENTION[name]}.{leaf}"
            if leaf == "weight" and value.ndim == 4:
                value = value[:, :, 0, 0]
        out[key] = value
    return out


def build_vae(config: dict[str, Any], path: Path) -> torch.nn.Module:
    """An empty ``AutoencoderKL`` from the config, after checking it is an SD-1.x-shaped VAE
    (RGB in/out, 4 latent channels, 8× downsampling)."""
    diffusers = require_diffusers()
    down = config.get("down_block_types") or []
    got = {"in_channels": config.get("in_channels"), "out_channels": config.get("out_channels"),
           "latent_channels": config.get("latent_channels"), "down blocks": len(down)}
    want = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "down blocks": 4}
    if got != want or config.get("_class_name", "AutoencoderKL") != "AutoencoderKL":
        raise ModelError(
            f"{path} is not the VAE MuseTalk was trained with (sd-vae-ft-mse): found "
            f"{config.get('_class_name')} with {got}; expected AutoencoderKL with {want}."
        )
    try:
        return diffusers.AutoencoderKL.from_config(config)
    except Exception as exc:
        raise ModelError(f"Cannot build a VAE from {path}: {exc}") from exc


def load_vae(folder: Path) -> tuple[torch.nn.Module, float]:
    """The VAE and its latent scale (the config's ``scaling_factor``, else 0.18215)."""
    config_path = folder / "config.json"
    config = _read_json(config_path)
    module = build_vae(config, config_path)
    weights = _vae_weights(folder)
    if weights is None:
        raise ModelError(f"Missing {folder / 'diffusion_pytorch_model.bin'} (or .safetensors). {FOLDER_HELP}")
    state = rename_legacy_vae_keys(_read_state(weights))
    check_state(module, state, weights, f"the VAE described by {config_path}")
    module.load_state_dict(state, strict=True)
    return module.eval().requires_grad_(False), float(config.get("scaling_factor", SCALING_FACTOR))


# ---- Whisper ----------------------------------------------------------------------------------

def build_whisper_encoder(config: dict[str, Any], path: Path) -> torch.nn.Module:
    """An empty whisper encoder (the decoder is never run, so it is never built)."""
    transformers = require_transformers()
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    if config.get("model_type", "whisper") != "whisper" or config.get("d_model") != AUDIO_DIM:
        raise ModelError(
            f"{path} is not whisper-tiny: found model_type {config.get('model_type')!r}, d_model "
            f"{config.get('d_model')}; MuseTalk's UNet takes whisper-tiny's 384-wide hidden states."
        )
    cfg = transformers.WhisperConfig(**{k: v for k, v in config.items() if not k.startswith("_")})
    return WhisperEncoder(cfg)


def load_whisper(folder: Path) -> tuple[torch.nn.Module, Any]:
    """The whisper encoder (float32) and its ``WhisperFeatureExtractor`` from ``folder``."""
    transformers = require_transformers()
    config_path = folder / "config.json"
    module = build_whisper_encoder(_read_json(config_path), config_path)
    weights = _whisper_weights(folder)
    if weights is None:
        raise ModelError(f"Missing {folder / 'pytorch_model.bin'} (or model.safetensors). {FOLDER_HELP}")
    raw = _read_state(weights)
    # WhisperForConditionalGeneration saves "model.encoder.*"; WhisperModel saves "encoder.*".
    prefix = next((p for p in ("model.encoder.", "encoder.") if any(k.startswith(p) for k in raw)), None)
    if prefix is None:
        raise ModelError(f"{weights} has no whisper encoder weights (no model.encoder.* or encoder.* tensors).")
    state = {k[len(prefix):]: v.float() for k, v in raw.items() if k.startswith(prefix)}
    check_state(module, state, weights, f"the whisper encoder described by {config_path}")
    module.load_state_dict(state, strict=True)
    pre = _read_json(folder / "preprocessor_config.json")
    extractor = transformers.WhisperFeatureExtractor(**{k: v for k, v in pre.items() if k != "feature_extractor_type"})
    if extractor.sampling_rate != 16000 or extractor.feature_size != module.config.num_mel_bins:
        raise ModelError(
            f"{folder / 'preprocessor_config.json'} does not match the encoder: {extractor.feature_size} mel bins at "
            f"{extractor.sampling_rate} Hz (expected {module.config.num_mel_bins} at 16000)."
        )
    return module.eval().requires_grad_(False), extractor
