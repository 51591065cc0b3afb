"""The model-file side of the bad-input matrix (issue #6), through the command line: a missing,
truncated, foreign or malicious checkpoint stops the job with one line (exit 1) that names the
file and says what to do, before any output exists; fp16 weights just work.

``tests/models/test_model.py`` checks the loader's messages case by case; here the same files go
through ``python -m lipsync`` end to end, and the malicious pickle is proven inert.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURE, need
from fakes import write_video
from robust import assert_nothing_written, face_clip, output_streams, run_cli

from lipsync.models.wav2lip.checkpoint import read_state_dict
from lipsync.errors import ModelError
from lipsync.models.wav2lip.generator import load_generator

HELP = "models/wav2lip"  # every "get the right file" message says where it goes


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("media")
    import soundfile as sf

    frames = [np.ascontiguousarray(f[::2, ::2]) for f in face_clip(4)]  # 256x256, the real face
    sf.write(folder / "voice.wav", np.zeros(6400, np.float32), 16000)
    return write_video(folder / "face.mkv", frames), folder / "voice.wav"


def cli_fails(tmp_path: Path, media: tuple[Path, Path], checkpoint: Path, capsys, monkeypatch, *words: str) -> str:
    """The real checkpoint loader runs (no fake network): exit 1, one line, nothing written."""
    monkeypatch.setattr("lipsync.models.folders.models_dirs", lambda: [tmp_path / "no models here"])
    video, audio = media
    rc, err = run_cli(
        [video, audio, "-o", tmp_path / "out.mp4", "--checkpoint", checkpoint, "--box", "0", "256", "0", "256"],
        capsys,
        monkeypatch,
    )
    assert rc == 1, err
    assert err.startswith("error: ") and err.count("\n") == 0 and "Traceback" not in err, err
    for word in words:
        assert word in err, f"{word!r} not in: {err}"
    assert_nothing_written(tmp_path / "out.mp4")
    return err


def test_missing_checkpoint(tmp_path: Path, media: tuple[Path, Path], capsys, monkeypatch) -> None:
    cli_fails(tmp_path, media, tmp_path / "wav2lip_gan.pth", capsys, monkeypatch, "not found", "wav2lip_gan.pth", HELP)
    # and without --checkpoint, when no models folder holds one: where it looked, where to put it
    monkeypatch.setattr("lipsync.models.folders.models_dirs", lambda: [tmp_path / "models"])
    monkeypatch.chdir(tmp_path)
    video, audio = media
    rc, err = run_cli([video, audio, "-o", tmp_path / "out.mp4"], capsys, monkeypatch)
    assert rc == 1 and "No Wav2Lip checkpoint found" in err and str(tmp_path / "models" / "wav2lip") in err


@pytest.mark.parametrize("keep", [100, 1 << 20], ids=["100 bytes", "1 MB"])
def test_truncated_checkpoint(tmp_path: Path, media: tuple[Path, Path], keep: int, capsys, monkeypatch) -> None:
    source = need(FIXTURE / "random_wav2lip.pth")
    cut = tmp_path / "wav2lip_gan.pth"
    with source.open("rb") as f:
        cut.write_bytes(f.read(keep))
    cli_fails(tmp_path, media, cut, capsys, monkeypatch, "wav2lip_gan.pth", "truncated or corrupt", "Download it again")


def syncnet() -> dict[str, torch.Tensor]:
    """The layout of Wav2Lip's lip-sync expert (face_encoder / audio_encoder stacks)."""
    return {
        "face_encoder.0.conv_block.0.weight": torch.zeros(32, 15, 7, 7),
        "face_encoder.0.conv_block.1.weight": torch.ones(32),
        "audio_encoder.0.conv_block.0.weight": torch.zeros(32, 1, 3, 3),
        "audio_encoder.0.conv_block.1.weight": torch.ones(32),
    }


def image_model() -> dict[str, torch.Tensor]:
    """An ESRGAN-like upscaler, the kind that sits next to it in models/."""
    return {"conv_first.weight": torch.zeros(64, 3, 3, 3), "body.0.rdb1.conv1.weight": torch.zeros(32, 64, 3, 3)}


@pytest.mark.parametrize(
    ("make", "suffix", "words"),
    [
        (syncnet, ".pth", ("SyncNet", "not a Wav2Lip 96×96 generator")),
        (image_model, ".pth", ("image restoration/upscaling model", "not a Wav2Lip 96×96 generator")),
        (image_model, ".safetensors", ("image restoration/upscaling model",)),
        (lambda: {"state_dict": {}, "epoch": 3}, ".pth", ("holds no weights",)),
    ],
    ids=["syncnet", "upscaler", "upscaler safetensors", "empty state"],
)
def test_checkpoint_of_another_architecture(
    tmp_path: Path, media: tuple[Path, Path], make, suffix: str, words, capsys, monkeypatch
) -> None:
    path = tmp_path / f"other model{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(make(), str(path))
    else:
        torch.save(make(), str(path))
    cli_fails(tmp_path, media, path, capsys, monkeypatch, "other model", *words)


class RunsCode:
    """Unpickled unsafely, this runs Python: it writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


@pytest.mark.parametrize("layout", ["zip", "legacy", "plain pickle"])
def test_pickle_that_would_run_code_is_refused_and_nothing_runs(
    tmp_path: Path, media: tuple[Path, Path], layout: str, capsys, monkeypatch
) -> None:
    marker = tmp_path / "code ran"
    evil = tmp_path / "wav2lip_gan.pth"
    payload = {"state_dict": {"conv.weight": torch.zeros(2)}, "hook": RunsCode(marker)}
    if layout == "plain pickle":
        evil.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, str(evil), _use_new_zipfile_serialization=layout == "zip")
    cli_fails(tmp_path, media, evil, capsys, monkeypatch, "Refused", "wav2lip_gan.pth", ".safetensors")
    with pytest.raises(ModelError, match="Refused"):
        load_generator(evil, "cpu")
    assert not marker.exists(), "safe loading ran code from the checkpoint"
    # The payload is live: an unsafe load runs it (so the check above means something).
    if layout == "plain pickle":
        pickle.loads(evil.read_bytes())
    else:
        torch.load(str(evil), weights_only=False)
    assert marker.read_text() == "code ran"


@pytest.fixture(scope="module")
def half_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("fp16")
    state = read_state_dict(need(FIXTURE / "random_wav2lip.pth"))
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    torch.save({"state_dict": {f"module.{k}": v for k, v in half.items()}}, str(folder / "wav2lip fp16 ü 模型.pth"))
    save_file(half, str(folder / "wav2lip fp16 ü 模型.safetensors"))
    return {"pth": folder / "wav2lip fp16 ü 模型.pth", "safetensors": folder / "wav2lip fp16 ü 模型.safetensors"}


def test_fp16_weights_load_and_match_fp32(half_checkpoints: dict[str, Path], generator) -> None:
    """The .safetensors here; the .pth goes through the CLI below."""
    rng = np.random.default_rng(0)
    mel = rng.uniform(-4, 4, (2, 80, 16)).astype(np.float32)
    faces = rng.uniform(0, 1, (2, 6, 96, 96)).astype(np.float32)
    half = load_generator(half_checkpoints["safetensors"], "cpu")  # widened to fp32 on the CPU
    assert next(half.module.parameters()).dtype == torch.float32
    difference = np.abs(half(mel, faces) - generator(mel, faces))
    assert difference.max() < 0.02, difference.max()  # fp16 rounding of the weights only


def test_fp16_checkpoint_through_the_cli(
    tmp_path: Path, media: tuple[Path, Path], half_checkpoints: dict[str, Path], capsys, monkeypatch
) -> None:
    video, audio = media
    out = tmp_path / "out.mp4"
    rc, err = run_cli(
        [video, audio, "-o", out, "--checkpoint", half_checkpoints["pth"], "--box", "60", "200", "60", "200"],
        capsys,
        monkeypatch,
    )
    assert rc == 0, err
    assert output_streams(out)["frames"] == 10


def test_fp16_on_the_cpu_is_refused_with_advice(tmp_path: Path, media: tuple[Path, Path], capsys, monkeypatch) -> None:
    video, audio = media
    rc, err = run_cli(
        [
            video,
            audio,
            "-o",
            tmp_path / "o.mp4",
            "--checkpoint",
            need(FIXTURE / "random_wav2lip.pth"),
            "--device",
            "cpu",
            "--fp16",
        ],
        capsys,
        monkeypatch,
    )
    assert rc == 1 and "float16 needs a GPU" in err and err.count("\n") == 0
    assert_nothing_written(tmp_path / "o.mp4")
