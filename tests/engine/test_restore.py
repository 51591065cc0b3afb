"""Face restoration through spandrel: small random models of GFPGAN, RestoreFormer and CodeFormer
built from spandrel's own architecture classes, saved to files here (never a download), must be
recognised and run; unsafe, foreign and broken files are refused with a sentence; the node runs
on an IMAGE batch of generated faces. Needs spandrel (CodeFormer: spandrel-extra-arches); without
them only the dependency message is checked."""

from __future__ import annotations

import importlib
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from fakehost import PACK_NAME, host  # noqa: F401  (host is a fixture)
from lipsync import restore as restore_mod
from lipsync.errors import DependencyError, InputError, ModelError
from lipsync.restore import FaceRestorer, load_restorer, restore_faces, restore_predictions, restorer_from_state_dict
from lipsync.models.wav2lip.generator import Wav2LipGenerator


def need_spandrel() -> Any:
    return pytest.importorskip("spandrel", reason="face restoration needs spandrel (pip install spandrel)")


def random_state(build: Callable[[], torch.nn.Module], dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """A module's state dict with small random values, without running its (slow) initialisers."""
    with torch.device("meta"):
        module = build()
    gen = torch.Generator().manual_seed(0)
    out = {}
    for key, value in module.state_dict().items():
        if value.is_floating_point():
            out[key] = (torch.randn(value.shape, generator=gen) * 0.02).to(dtype)
        else:
            out[key] = torch.zeros(value.shape, dtype=value.dtype)
    return out


def tiny_restoreformer() -> dict[str, torch.Tensor]:
    need_spandrel()
    from spandrel.architectures.RestoreFormer import RestoreFormer

    return random_state(lambda: RestoreFormer(
        n_embed=32, embed_dim=16, ch=32, ch_mult=(1, 1, 1, 1, 1, 1), num_res_blocks=1, z_channels=16, head_size=8
    ))


def save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"params_ema": state}, path)  # the layout of the published GFPGAN/CodeFormer files
    return path


@pytest.fixture(scope="module")
def restoreformer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save(tiny_restoreformer(), tmp_path_factory.mktemp("rf") / "tiny_restoreformer.safetensors")


@pytest.fixture(scope="module")
def restoreformer(restoreformer_file: Path) -> FaceRestorer:
    return load_restorer(restoreformer_file)


# --- recognition -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_restoreformer_is_recognised_from_a_file(tmp_path: Path, suffix: str) -> None:
    path = save(tiny_restoreformer(), tmp_path / f"rf{suffix}")
    restorer = load_restorer(path)
    assert restorer.architecture == "RestoreFormer"
    assert restorer.name == path.name and not restorer.uses_fidelity


def gfpgan_state() -> dict[str, torch.Tensor]:
    need_spandrel()
    from spandrel.architectures.GFPGAN import GFPGAN

    # spandrel builds GFPGAN v1 "clean" at full size (512 px, channel multiplier 2) whatever the
    # file says, so the random model is full-size too (87 M weights); fp16 halves the file.
    return random_state(lambda: GFPGAN(
        out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None, fix_decoder=False,
        num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True,
    ), torch.float16)


def codeformer_state() -> dict[str, torch.Tensor]:
    need_spandrel()
    pytest.importorskip("spandrel_extra_arches", reason="CodeFormer needs spandrel-extra-arches")
    from spandrel_extra_arches.architectures.CodeFormer import CodeFormer

    # The transformer is made small; the VQ encoder/decoder around it is fixed by spandrel.
    return random_state(lambda: CodeFormer(
        dim_embd=64, n_head=8, n_layers=1, codebook_size=64, latent_size=256, connect_list=["32"]
    ), torch.float16)


def test_gfpgan_is_recognised() -> None:
    restorer = restorer_from_state_dict(gfpgan_state(), "GFPGANv1.4.pth")
    assert restorer.architecture == "GFPGAN" and not restorer.uses_fidelity


def test_codeformer_is_recognised_with_the_extra_arches(tmp_path: Path) -> None:
    restorer = load_restorer(save(codeformer_state(), tmp_path / "codeformer.pth"))
    assert restorer.architecture == "CodeFormer" and restorer.uses_fidelity


@pytest.mark.slow
@pytest.mark.parametrize("build", [gfpgan_state, codeformer_state], ids=["GFPGAN", "CodeFormer"])
def test_full_size_restorers_run(build: Callable[[], dict[str, torch.Tensor]]) -> None:
    """A real forward pass at 512 (about 10 s each on 2 CPU cores)."""
    restorer = restorer_from_state_dict(build())
    faces = np.random.default_rng(0).random((1, 96, 96, 3), dtype=np.float32)
    first = restore_faces(restorer, faces, fidelity=0.3, output_size=96)
    again = restore_faces(restorer, faces, fidelity=0.3, output_size=96)
    assert first.shape == (1, 96, 96, 3) and np.isfinite(first).all()
    assert np.array_equal(first, again), "the same face must give the same result (GFPGAN: fixed noise)"


def test_codeformer_without_the_extra_arches_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    spandrel = need_spandrel()
    monkeypatch.setattr(restore_mod, "_registry", lambda: spandrel.MAIN_REGISTRY.copy())
    monkeypatch.setattr(restore_mod, "_has_extra_arches", lambda: False)
    state = {"position_emb": torch.zeros(256, 8), "idx_pred_layer.1.weight": torch.zeros(4, 8)}
    with pytest.raises(DependencyError, match="spandrel-extra-arches.*non-commercial"):
        restorer_from_state_dict(state, "codeformer.pth")


def test_an_upscaler_is_not_a_face_restorer(tmp_path: Path) -> None:
    need_spandrel()
    from spandrel.architectures.Compact import Compact

    path = save(random_state(lambda: Compact(num_feat=8, num_conv=2, upscale=2)), tmp_path / "x2_compact.safetensors")
    with pytest.raises(ModelError, match="not a face restorer.*upscale_models"):
        load_restorer(path)


def test_unknown_weights_are_refused(tmp_path: Path) -> None:
    need_spandrel()
    path = save({"some.weight": torch.zeros(3, 3)}, tmp_path / "mystery.safetensors")
    with pytest.raises(ModelError, match="not a model spandrel recognises.*facerestore_models"):
        load_restorer(path)


class Payload:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("this must never run",))


def test_a_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    need_spandrel()
    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        pickle.dump({"params_ema": Payload()}, f)
    with pytest.raises(ModelError, match="Refused to load evil.pth"):
        load_restorer(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.pth", None, "not found"),
        ("empty.pth", b"", "empty"),
        ("page.pth", b"<html>Not Found</html>", "not a PyTorch weights file.*error page"),
        ("model.onnx", b"onnx", "not .onnx"),
        ("bad.safetensors", b"\x00\x01garbage", "not a valid .safetensors"),
    ],
)
def test_broken_files_get_a_sentence(tmp_path: Path, name: str, content: bytes | None, message: str) -> None:
    need_spandrel()
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        load_restorer(path)


def test_without_spandrel_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def no_spandrel(name: str, *args: Any) -> Any:
        if name.startswith("spandrel"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(restore_mod.importlib, "import_module", no_spandrel)
    with pytest.raises(DependencyError, match="pip install spandrel"):
        restorer_from_state_dict({"x": torch.zeros(1)})


# --- running ---------------------------------------------------------------------------------


def smooth_faces(n: int) -> np.ndarray:
    """Soft colour gradients: they survive a 96 -> 512 -> 96 round trip."""
    y, x = np.mgrid[0:96, 0:96] / 95.0
    return np.stack([np.stack([x, y, (x + y + i) / (2 + n)], axis=-1) for i in range(n)]).astype(np.float32)


def test_restore_sizes_strength_and_range(restoreformer: FaceRestorer) -> None:
    faces = smooth_faces(2)
    grown = restore_faces(restoreformer, faces, strength=0.0)  # no network call
    assert grown.shape == (2, 512, 512, 3) and grown.dtype == np.float32
    back = restore_faces(restoreformer, torch.from_numpy(faces), strength=0.0, output_size=None)
    assert back.shape == faces.shape
    assert np.abs(back - faces).mean() < 0.01, "strength 0 gives the input back (resized there and back)"
    full = restore_faces(restoreformer, faces[:1], strength=1.0)
    half = restore_faces(restoreformer, faces[:1], strength=0.5)
    assert 0.0 <= full.min() and full.max() <= 1.0 and not np.allclose(full, grown[:1], atol=0.01)
    np.testing.assert_allclose(half, (grown[:1] + full) / 2, atol=1e-4)


def test_pipeline_form_keeps_bgr_order(restoreformer: FaceRestorer) -> None:
    pred = np.zeros((2, 3, 96, 96), np.float32)
    pred[:, 2] = 1.0  # red in BGR
    out = restore_predictions(restoreformer, pred, strength=0.0)
    assert out.shape == (2, 3, 512, 512)
    assert out[:, 2].mean() > 0.99 and out[:, 0].mean() < 0.01


class Recording(torch.nn.Module):
    """Stands in for a network: records its input and keyword arguments, returns its input."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.calls: list[tuple[torch.Tensor, dict[str, Any]]] = []

    def forward(self, x: torch.Tensor, **kwargs: Any) -> tuple[torch.Tensor]:
        self.calls.append((x.clone(), kwargs))
        return (x,)


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("CodeFormer", {"weight": 0.7}),
        ("GFPGAN", {"return_rgb": False, "randomize_noise": False}),
        ("RestoreFormer", {}),
    ],
)
def test_calling_convention(arch: str, expected: dict[str, Any]) -> None:
    net = Recording()
    restorer = FaceRestorer(SimpleNamespace(architecture=SimpleNamespace(id=arch), model=net), "x")
    faces = np.full((1, 512, 512, 3), 0.25, np.float32)
    out = restore_faces(restorer, faces, strength=1.0, fidelity=0.7)
    (x, kwargs), = net.calls
    assert kwargs == expected
    assert torch.allclose(x, torch.full_like(x, -0.5)), "the networks take [-1, 1]"
    np.testing.assert_allclose(out, faces, atol=1e-6)


def test_bad_strength_or_faces_are_refused(restoreformer: FaceRestorer) -> None:
    with pytest.raises(InputError, match="strength"):
        restore_faces(restoreformer, np.zeros((1, 96, 96, 3), np.float32), strength=1.5)
    with pytest.raises(InputError, match="count, height, width, 3"):
        restore_faces(restoreformer, np.zeros((96, 96, 3), np.float32))


# --- the node --------------------------------------------------------------------------------


def node_class(host: Any) -> Any:
    return importlib.import_module(f"{PACK_NAME}.nodes.restore").FaceRestore


def run_node(host: Any, **inputs: Any) -> Any:
    node = node_class(host)
    node.GET_SCHEMA()
    return node.execute(**inputs)


def test_node_restores_an_image_batch(host: Any, restoreformer_file: Path) -> None:
    folder = host.models / "facerestore_models"
    folder.mkdir(parents=True)
    (folder / restoreformer_file.name).write_bytes(restoreformer_file.read_bytes())
    (folder / "notes.txt").write_text("not a model")
    node = node_class(host)
    schema = node.GET_SCHEMA()
    assert schema.node_id == "ReSyncFaceRestore" and schema.description
    assert all(getattr(i, "tooltip", None) for i in schema.inputs), "every input has a tooltip"
    combo = next(i for i in schema.inputs if i.id == "model_name")
    assert combo.options == [restoreformer_file.name]
    faces = torch.rand(1, 96, 96, 3)
    out = run_node(host, images=faces, model_name=restoreformer_file.name, strength=1.0, fidelity=0.5, output_size=128)
    (restored,) = out.args
    assert tuple(restored.shape) == (1, 128, 128, 3) and restored.dtype == torch.float32
    assert host.progress[-1] == (1, 1) and host.loaded, "progress reported, model placed by the host"
    assert node.validate_inputs(model_name=restoreformer_file.name) is True
    assert "not found" in node.validate_inputs(model_name="gone.pth")


def test_node_reports_a_missing_spandrel(host: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = host.models / "facerestore_models"
    folder.mkdir(parents=True)
    (folder / "GFPGANv1.4.pth").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "spandrel", None)  # import spandrel -> ImportError
    with pytest.raises(host.lib.errors.DependencyError, match="pip install spandrel"):
        run_node(host, images=torch.rand(1, 96, 96, 3), model_name="GFPGANv1.4.pth")


# --- the streaming pipeline ------------------------------------------------------------------


class FixedFace:
    name = "fixed"

    def detect(self, frame: np.ndarray) -> list[Any]:
        from lipsync.types import Detection

        return [Detection(40.0, 30.0, 120.0, 130.0, 0.99)]


class Echo(Wav2LipGenerator):
    """A network that gives back the face it was shown."""

    name = "echo"

    def __call__(self, mel: np.ndarray, faces: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(faces[:, 3:6])


def test_pipeline_restores_only_inside_the_mouth_mask(tmp_path: Path, restoreformer_file: Path) -> None:
    from fractions import Fraction

    from lipsync.engine.lipsync import LipSyncOptions, lipsync_video
    from lipsync.types import Waveform
    from lipsync.media.video import VideoWriter, iter_frames

    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 256, (160, 160, 3), dtype=np.uint8) for _ in range(2)]
    video = tmp_path / "in.mkv"
    with VideoWriter(video, Fraction(25), lossless=True) as writer:
        for f in frames:
            writer.write(f)
    audio = Waveform(np.zeros((1, 1280), np.float32), 16000)
    outputs = {}
    for label, restore in (("plain", None), ("restored", str(restoreformer_file))):
        out = tmp_path / f"{label}.mkv"
        opts = LipSyncOptions.of(lossless=True, restore=restore, restore_strength=1.0)
        lipsync_video(video, audio, out, Echo(), opts, detector=FixedFace())
        outputs[label] = list(iter_frames(out))
    mid = (30 + 140) // 2  # box rows 30..140 with the bottom pad: the mask starts at the middle
    for plain, restored, src in zip(outputs["plain"], outputs["restored"], frames):
        assert np.array_equal(restored[:mid], src[:mid]) and np.array_equal(restored[:, 125:], src[:, 125:])
        assert not np.array_equal(restored[mid:140, 40:120], plain[mid:140, 40:120]), "restoration had no effect"
