"""Tests of the Wav2Lip network and of loading its weights (lipsync.models.wav2lip.network, .checkpoint, .inference).

The golden data is ``shared/fixtures/wav2lip_reference``: a random checkpoint in the published
layout and what the original ``inference.py`` computed with it (``case_a/expected.npz``). The
checkpoint is loaded and the 72 reference frames are run once per module; everything else uses
small subsets, tiny synthetic checkpoints, or files written to tmp_path.

Tolerances (measured on the CPU this was written on; the fixture was made on another CPU):
- ``pred`` vs the reference: max abs diff ~1e-5, asserted ≤ 1e-4.
- batch size 72 vs 8: identical; 1 vs 8: ~3e-6 apart; asserted ≤ 1e-5.
- reference paste: bit-exact from the fixture's own ``pred``; from our ``pred`` 99.992 % of the
  pixels identical and none off by more than one level (``* 255`` truncation flips a level when
  the float differs by 1e-5). Fully identical only with the torch build AND the CPU kernels that
  made the fixture.
- ONNX (onnxruntime) vs torch: ~1.4e-5, asserted ≤ 1e-4.
- fp16 weights vs fp32: max ~1.1e-2, mean ~1.2e-3; asserted max ≤ 2.5e-2, mean ≤ 2e-3. The rounding
  of the weights alone causes it: the loader widens them exactly to fp32 (checked below).
"""

from __future__ import annotations

import os
import sys
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch
from torch import nn

from lipsync import cli
from lipsync.models.wav2lip.checkpoint import convert_to_safetensors, read_state_dict
from lipsync.composite import paste_reference
from lipsync.errors import DependencyError, InputError, ModelError
from lipsync.models.wav2lip.preprocess import crop_faces, model_inputs, predict, to_uint8_reference
from lipsync.models.wav2lip.generator import OnnxGenerator, TorchGenerator, build_module, load_generator, resolve_device
from lipsync.models.wav2lip.network import Wav2Lip
from lipsync.types import Box

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
State = dict[str, torch.Tensor]

BOX = Box(top=48, bottom=232, left=56, right=200)  # box.txt: 48 232 56 200
N_KEYS = 352
N_PARAMS = 36_298_035
PRED_TOL = 1e-4
BATCH_TOL = 1e-5
ONNX_TOL = 1e-4
FP16_MAX_TOL = 2.5e-2
FP16_MEAN_TOL = 2e-3
SUBSET = 12  # frames for checks where 72 add nothing: one batch of 8 and a tail of 4
LICENCE_WORDS = "non-commercial"
MODELS_FOLDER = "models/wav2lip"


def shared_dir() -> Path:
    env = os.environ.get("LIPSYNC_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared"


FIXTURE = shared_dir() / "fixtures" / "wav2lip_reference"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared fixture missing: {path} (set LIPSYNC_SHARED to the shared/ folder)")
    return path


# ---------------------------------------------------------------------------------------------
# helpers


def rgb_frames(ref: Mapping[str, np.ndarray]) -> list[U8]:
    """The fixture's frames are BGR (OpenCV); the library takes RGB."""
    return [np.ascontiguousarray(f[:, :, ::-1]) for f in ref["frames_in"]]


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def run(generator: Callable[[F32, F32], F32], ref: Mapping[str, np.ndarray], crops: U8, n: int, batch: int = 8) -> F32:
    return predict(generator, ref["mel_chunks"][:n], crops[:n], batch_size=batch)


def assert_same_tensors(got: Mapping[str, torch.Tensor], want: Mapping[str, torch.Tensor]) -> None:
    assert set(got) == set(want)
    different = [k for k in want if got[k].dtype != want[k].dtype or not torch.equal(got[k], want[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[0]}"


def half(state: Mapping[str, torch.Tensor]) -> State:
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def save_safetensors(state: Mapping[str, torch.Tensor], path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ModelError) as info:
        read_state_dict(path)
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# module-scoped fixtures: the checkpoint is read and the 72 frames are run once


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return need(FIXTURE / "random_wav2lip.pth")


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    return dict(np.load(need(FIXTURE / "case_a" / "expected.npz")))


@pytest.fixture(scope="module")
def raw_checkpoint(checkpoint: Path) -> dict:
    """The fixture as torch saved it, read without the library."""
    return torch.load(str(checkpoint), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def state(checkpoint: Path) -> State:
    return read_state_dict(checkpoint)


@pytest.fixture(scope="module")
def module(state: State) -> Wav2Lip:
    return build_module(state)


@pytest.fixture(scope="module")
def torch_gen(module: Wav2Lip) -> TorchGenerator:
    return TorchGenerator(module)


@pytest.fixture(scope="module")
def crops(ref: Mapping[str, np.ndarray]) -> U8:
    frames = rgb_frames(ref)
    return crop_faces(frames, [BOX] * len(frames))


@pytest.fixture(scope="module")
def pred(torch_gen: TorchGenerator, ref: Mapping[str, np.ndarray], crops: U8) -> F32:
    return predict(torch_gen, ref["mel_chunks"], crops, batch_size=8)


@pytest.fixture(scope="module")
def legacy_checkpoint(tmp_path_factory: pytest.TempPathFactory, state: State) -> Path:
    """The published files' format: a non-zip pickle of the training script's dict."""
    path = tmp_path_factory.mktemp("legacy") / "wav2lip_legacy.pth"
    published = {
        "state_dict": {"module." + k: v for k, v in state.items()},
        "optimizer": None,
        "global_step": 0,
        "global_epoch": 0,
    }
    torch.save(published, str(path), _use_new_zipfile_serialization=False)
    return path


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> Path:
    return convert_to_safetensors(checkpoint, tmp_path_factory.mktemp("converted") / "wav2lip.safetensors")


# ---------------------------------------------------------------------------------------------
# 1. the network matches the checkpoint


def test_network_has_the_checkpoint_keys_shapes_and_parameter_count(raw_checkpoint: dict) -> None:
    raw = raw_checkpoint["state_dict"]
    with torch.device("meta"):
        net = Wav2Lip()
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    theirs = {k.removeprefix("module."): tuple(v.shape) for k, v in raw.items()}
    assert len(theirs) == N_KEYS
    assert sorted(set(theirs) ^ set(ours)) == []
    assert {k: s for k, s in ours.items() if theirs[k] != s} == {}
    assert sum(p.numel() for p in net.parameters()) == N_PARAMS


def test_read_state_dict_takes_state_dict_and_strips_module_prefix(raw_checkpoint: dict, state: State) -> None:
    raw = raw_checkpoint["state_dict"]
    assert all(k.startswith("module.") for k in raw), "the fixture should carry DataParallel's prefix"
    assert_same_tensors(state, {k.removeprefix("module."): v for k, v in raw.items()})


@pytest.mark.parametrize(
    "layout",
    ["state_dict without prefix", "bare with prefix", "bare without prefix"],
)
def test_read_state_dict_accepts_other_layouts(tmp_path: Path, state: State, layout: str) -> None:
    prefix = "module." if "with prefix" in layout else ""
    tensors = {prefix + k: v for k, v in state.items()}
    obj = {"state_dict": tensors, "global_step": 3} if layout.startswith("state_dict") else tensors
    path = tmp_path / "layout.pth"
    torch.save(obj, str(path))
    assert_same_tensors(read_state_dict(path), state)


def test_weights_load_strictly_and_unchanged(state: State, module: Wav2Lip) -> None:
    result = Wav2Lip().load_state_dict(state, strict=True)
    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    assert_same_tensors(module.state_dict(), state)
    assert not module.training, "build_module must give an eval-mode module (BatchNorm uses running stats)"


# ---------------------------------------------------------------------------------------------
# 2. parity with the reference inference.py


def test_crops_equal_reference_faces96(ref: Mapping[str, np.ndarray], crops: U8) -> None:
    assert np.array_equal(np.unique(ref["coords"], axis=0), [[BOX.top, BOX.bottom, BOX.left, BOX.right]])
    assert crops.dtype == np.uint8
    assert np.array_equal(crops, ref["faces96"])


def test_first_model_inputs_equal_reference(ref: Mapping[str, np.ndarray], crops: U8) -> None:
    faces = model_inputs(crops[:4])
    assert faces.dtype == np.float32
    assert np.array_equal(faces, ref["img_batch_first"].transpose(0, 3, 1, 2))  # NHWC there, NCHW here
    assert np.array_equal(ref["mel_batch_first"][..., 0], ref["mel_chunks"][:4])


def test_predict_feeds_the_generator_the_reference_batch(ref: Mapping[str, np.ndarray], crops: U8) -> None:
    calls: list[tuple[F32, F32]] = []

    def recorder(mel: F32, faces: F32) -> F32:
        calls.append((mel, faces))
        return np.zeros((len(faces), 3, 96, 96), np.float32)

    out = run(recorder, ref, crops, SUBSET, batch=4)
    assert [len(f) for _, f in calls] == [4, 4, 4]
    assert out.shape == (SUBSET, 3, 96, 96)
    mel, faces = calls[0]
    assert np.array_equal(faces, ref["img_batch_first"].transpose(0, 3, 1, 2))
    # (B, 80, 16) here; the reference's (B, 80, 16, 1) becomes (B, 1, 80, 16) in both.
    assert np.array_equal(np.reshape(mel, (4, 1, 80, 16)), ref["mel_batch_first"].transpose(0, 3, 1, 2))


def test_pred_reproduces_reference(ref: Mapping[str, np.ndarray], pred: F32) -> None:
    assert pred.dtype == np.float32 and pred.shape == ref["pred"].shape == (72, 3, 96, 96)
    assert max_diff(pred, ref["pred"]) <= PRED_TOL


def test_pred_does_not_depend_on_batch_size(
    torch_gen: TorchGenerator, ref: Mapping[str, np.ndarray], crops: U8, pred: F32
) -> None:
    whole = run(torch_gen, ref, crops, 72, batch=72)
    assert max_diff(whole, pred) <= BATCH_TOL
    singles = run(torch_gen, ref, crops, 8, batch=1)  # 8 single calls against the first batch of 8
    assert max_diff(singles, pred[:8]) <= BATCH_TOL


def test_cpu_batches_run_at_once_give_the_same_faces_in_order(
    module: Wav2Lip, ref: Mapping[str, np.ndarray], crops: U8, pred: F32
) -> None:
    """Whole batches in worker threads (one torch thread each) against one at a time in this
    thread: same faces to float rounding, in order, whatever the grouping; this thread's torch
    thread count is left alone."""
    threads = torch.get_num_threads()
    serial = TorchGenerator(module, workers=1)
    parallel = TorchGenerator(module, workers=3)
    faces = model_inputs(crops)
    mel = ref["mel_chunks"]
    batches = [(mel[i : i + 8], faces[i : i + 8]) for i in range(0, 72, 8)]
    one_by_one = serial.run_batches(batches)
    at_once = parallel.run_batches(batches)
    assert len(at_once) == 9 and all(a.shape == (8, 3, 96, 96) for a in at_once)
    assert max(max_diff(a, b) for a, b in zip(at_once, one_by_one)) <= BATCH_TOL
    assert max_diff(np.concatenate(at_once), pred) <= BATCH_TOL
    # a lone batch goes through the same workers: bit-identical to the same batch in a group
    assert np.array_equal(parallel.run_batches(batches[3:4])[0], at_once[3])
    assert torch.get_num_threads() == threads


def test_output_depends_on_the_audio(
    torch_gen: TorchGenerator, ref: Mapping[str, np.ndarray], crops: U8, pred: F32
) -> None:
    silent = predict(torch_gen, np.zeros_like(ref["mel_chunks"][:8]), crops[:8], batch_size=8)
    assert max_diff(silent, pred[:8]) > 100 * PRED_TOL


# ---------------------------------------------------------------------------------------------
# 3. the reference paste


def paste_all(ref: Mapping[str, np.ndarray], pred: F32) -> U8:
    faces = to_uint8_reference(pred)
    frames = rgb_frames(ref)
    return np.stack([paste_reference(f, faces[i], BOX) for i, f in enumerate(frames)])[..., ::-1]


def test_reference_paste_is_exact_from_the_reference_pred(ref: Mapping[str, np.ndarray]) -> None:
    assert np.array_equal(paste_all(ref, ref["pred"]), ref["frames_out"])


def test_reference_paste_from_our_pred(ref: Mapping[str, np.ndarray], pred: F32) -> None:
    # Bit-exact only with the torch build and CPU kernels that made the fixture: a 1e-5 float
    # difference flips a level under ``(pred * 255).astype(uint8)``. Measured: 99.992 %, max 1.
    out = paste_all(ref, pred)
    diff = np.abs(out.astype(np.int16) - ref["frames_out"].astype(np.int16))
    assert diff.max() <= 1
    assert (diff == 0).mean() >= 0.9999


# ---------------------------------------------------------------------------------------------
# 4. safe loading


def leave_marker(path: str) -> str:
    """What the malicious pickle calls when loaded unsafely."""
    Path(path).write_text("code ran")
    return "pwned"


class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Callable[[str], str], tuple[str]]:
        return (leave_marker, (self.marker,))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_pickle_that_would_run_code_is_refused(tmp_path: Path, zip_format: bool) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": RunsCode(marker)}}, str(path), _use_new_zipfile_serialization=zip_format)
    message = load_error(path)
    assert "Refused" in message and "evil.pth" in message and ".safetensors" in message
    assert not marker.exists(), "safe loading ran code from the checkpoint"
    # The payload is live: an unsafe load does run it (so the check above means something).
    torch.load(str(path), weights_only=False)
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize("keep", ["half", 1000, 3], ids=["first half", "first 1000 bytes", "first 3 bytes"])
@pytest.mark.parametrize("source", ["zip", "legacy"])
def test_truncated_checkpoint_is_reported(
    tmp_path: Path, checkpoint: Path, legacy_checkpoint: Path, source: str, keep: str | int
) -> None:
    data = (checkpoint if source == "zip" else legacy_checkpoint).read_bytes()
    path = tmp_path / "wav2lip_gan.pth"
    path.write_bytes(data[: len(data) // 2 if keep == "half" else keep])
    message = load_error(path)
    assert "truncated or corrupt" in message and "wav2lip_gan.pth" in message
    assert "Download it again" in message and "Refused" not in message


def test_truncated_safetensors_is_reported(tmp_path: Path, converted: Path) -> None:
    path = tmp_path / "cut.safetensors"
    path.write_bytes(converted.read_bytes()[:1000])
    message = load_error(path)
    assert "cut.safetensors" in message and "not a valid .safetensors" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head></html>",
            "not a PyTorch checkpoint: it starts with '<!DOCTYPE html><'",
        ),
        (
            b"version https://git-lfs.github.com/spec/v1\noid sha256:ca9ab7b7\nsize 435801865\n",
            "not a PyTorch checkpoint: it starts with 'version https://'",
        ),
        (b"\x80\x02" + b"\xff" * 100, "truncated or corrupt (UnpicklingError: invalid data)"),
    ],
    ids=["html page", "git-lfs pointer", "garbled pickle"],
)
def test_file_that_is_not_a_checkpoint_is_not_called_unsafe(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "wav2lip.pth"
    path.write_bytes(content)
    message = load_error(path)
    assert expected in message and "wav2lip.pth" in message and "Download it again" in message
    assert "Refused" not in message


@pytest.mark.parametrize("case", ["missing", "empty"])
def test_missing_or_empty_checkpoint_says_where_to_put_it(tmp_path: Path, case: str) -> None:
    path = tmp_path / "wav2lip_gan.pth"
    if case == "empty":
        path.write_bytes(b"")
    message = load_error(path)
    assert "wav2lip_gan.pth" in message
    assert ("not found" if case == "missing" else "empty (0 bytes)") in message
    assert MODELS_FOLDER in message and LICENCE_WORDS in message


def syncnet_state() -> State:
    return {
        "face_encoder.0.conv_block.0.weight": torch.zeros(32, 15, 7, 7),
        "face_encoder.0.conv_block.0.bias": torch.zeros(32),
        "audio_encoder.0.conv_block.0.weight": torch.zeros(32, 1, 3, 3),
        "audio_encoder.0.conv_block.0.bias": torch.zeros(32),
    }


def discriminator_state() -> State:
    return {
        "face_encoder_blocks.0.0.conv_block.0.weight": torch.zeros(32, 3, 7, 7),
        "face_encoder_blocks.0.0.conv_block.0.bias": torch.zeros(32),
        "binary_pred.0.weight": torch.zeros(1, 512, 1, 1),
        "binary_pred.0.bias": torch.zeros(1),
    }


def image_model_state() -> State:
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 3, padding=1))
    return dict(net.state_dict())


def restoration_state() -> State:
    return {"conv_first.weight": torch.zeros(64, 3, 3, 3), "body.0.rdb1.conv1.weight": torch.zeros(32, 64, 3, 3)}


@pytest.mark.parametrize(
    ("make", "suffix", "expected"),
    [
        (syncnet_state, ".pth", ["found 4 tensors, 352 expected", "SyncNet"]),
        (discriminator_state, ".pth", ["found 4 tensors", "discriminator", "binary_pred"]),
        (image_model_state, ".pth", ["found 4 tensors, 352 expected", "unexpected (e.g. 0.bias)"]),
        (restoration_state, ".safetensors", ["found 2 tensors", "image restoration", "models/facerestore_models"]),
    ],
    ids=["syncnet", "discriminator", "image model", "restoration model"],
)
def test_other_architecture_is_named(
    tmp_path: Path, make: Callable[[], State], suffix: str, expected: list[str]
) -> None:
    path = tmp_path / f"other{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": make()}, str(path))
    else:
        save_safetensors(make(), path)
    message = load_error(path)
    assert f"other{suffix} is not a Wav2Lip 96×96 generator checkpoint" in message
    for words in expected:
        assert words in message


def test_other_face_size_variant_is_named(tmp_path: Path, state: State) -> None:
    key = "face_encoder_blocks.0.0.conv_block.0.weight"
    variant = dict(state)
    variant[key] = torch.zeros(32, 6, 7, 7)  # (16, 6, 7, 7) in the 96 px network
    path = tmp_path / "wav2lip_288.pth"
    torch.save({"state_dict": variant}, str(path))
    message = load_error(path)
    assert "wav2lip_288.pth" in message
    assert f"1 of another shape (e.g. {key}: (32, 6, 7, 7) instead of (16, 6, 7, 7))" in message
    assert "256/288/384 px" in message


def test_legacy_published_layout_loads(legacy_checkpoint: Path, state: State) -> None:
    assert not zipfile.is_zipfile(legacy_checkpoint), "the test file should be a legacy (non-zip) pickle"
    assert_same_tensors(read_state_dict(legacy_checkpoint), state)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_fp16_weights_load_and_stay_close(
    tmp_path: Path, state: State, ref: Mapping[str, np.ndarray], crops: U8, pred: F32, suffix: str
) -> None:
    # fp16 files are stored as a bare state dict (no "state_dict" wrapper, no "module." prefix).
    weights = half(state)
    path = tmp_path / f"wav2lip_fp16{suffix}"
    if suffix == ".pth":
        torch.save(weights, str(path))
    else:
        save_safetensors(weights, path)
    assert read_state_dict(path)["output_block.1.weight"].dtype == torch.float16
    generator = load_generator(path, "cpu")
    assert isinstance(generator, TorchGenerator)
    # The loader adds nothing to the rounding of the weights: it widens them exactly to fp32.
    widened = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    assert_same_tensors(generator.module.state_dict(), widened)
    # Measured: max 1.1e-2, mean 1.2e-3 (weight rounding through ~60 layers with calibrated BN).
    diff = np.abs(run(generator, ref, crops, 8) - pred[:8])
    assert diff.max() <= FP16_MAX_TOL and diff.mean() <= FP16_MEAN_TOL


# ---------------------------------------------------------------------------------------------
# 5. conversion to safetensors


def test_convert_to_safetensors_keeps_the_weights_only(
    converted: Path, state: State, ref: Mapping[str, np.ndarray], crops: U8, pred: F32
) -> None:
    from safetensors import safe_open

    with safe_open(str(converted), framework="pt") as f:
        keys = set(f.keys())
        metadata = f.metadata()
    assert len(keys) == N_KEYS and not any("optimizer" in k or "module." in k for k in keys)
    assert metadata.get("architecture") == "wav2lip-96"
    assert converted.stat().st_size < 150_000_000
    assert not list(converted.parent.glob(".*lipsync-tmp*")), "the temporary file was left behind"
    assert_same_tensors(read_state_dict(converted), state)
    generator = load_generator(converted, "cpu")
    assert np.array_equal(run(generator, ref, crops, 8), pred[:8])


def test_convert_through_the_cli(
    tmp_path: Path, checkpoint: Path, state: State, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "from_cli.safetensors"
    assert cli.main(["convert", str(checkpoint), "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().err
    assert_same_tensors(read_state_dict(out), state)


def test_convert_onto_itself_is_refused(converted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = converted.stat()
    for dst in (converted, None):  # explicit, and the default name (same stem, .safetensors)
        with pytest.raises(ModelError, match="overwrite"):
            convert_to_safetensors(converted, dst)
    assert cli.main(["convert", str(converted)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and converted.name in err
    after = converted.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_convert_to_a_name_the_loader_cannot_read_is_refused(tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "wav2lip_converted.pth"
    with pytest.raises(ModelError, match=r"\.safetensors, not wav2lip_converted\.pth"):
        convert_to_safetensors(checkpoint, out)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# 6. ONNX


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory, module: Wav2Lip) -> Path:
    pytest.importorskip("onnx", reason="onnx is needed to export the test model")
    path = tmp_path_factory.mktemp("onnx") / "wav2lip_96.onnx"
    batch = {0: "batch"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (torch.zeros(1, 1, 80, 16), torch.zeros(1, 6, 96, 96)),
                str(path),
                input_names=["mel_spectrogram", "video_frames"],
                output_names=["output"],
                dynamic_axes={"mel_spectrogram": batch, "video_frames": batch, "output": batch},
                opset_version=17,
                dynamo=False,
            )
    except Exception as exc:  # the TorchScript exporter may be gone in a future torch
        pytest.skip(f"torch {torch.__version__} cannot export ONNX here: {type(exc).__name__}: {exc}")
    return path


def swapped_inputs(src: Path, dst: Path) -> Path:
    """The same network with its inputs listed face first and renamed, as other conversions do."""
    import onnx

    model = onnx.load(str(src))
    renames = {"mel_spectrogram": "audio", "video_frames": "face"}
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
    inputs = list(model.graph.input)
    for value in inputs:
        value.name = renames[value.name]
    del model.graph.input[:]
    model.graph.input.extend(reversed(inputs))
    onnx.save(model, str(dst))
    return dst


def tiny_onnx(path: Path, inputs: list[tuple[str, list[int | str]]]) -> Path:
    """An ONNX model with these inputs whose output is its last input."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    values = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in inputs]
    output = helper.make_tensor_value_info("out", TensorProto.FLOAT, inputs[-1][1])
    graph = helper.make_graph([helper.make_node("Identity", [inputs[-1][0]], ["out"])], "tiny", values, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_onnx_matches_torch(onnx_model: Path, ref: Mapping[str, np.ndarray], crops: U8, pred: F32) -> None:
    generator = load_generator(onnx_model, "cpu")
    assert isinstance(generator, OnnxGenerator) and generator.name == "wav2lip_96"
    assert max_diff(run(generator, ref, crops, SUBSET), pred[:SUBSET]) <= ONNX_TOL


def test_onnx_inputs_are_found_by_shape(
    tmp_path: Path, onnx_model: Path, ref: Mapping[str, np.ndarray], crops: U8, pred: F32
) -> None:
    path = swapped_inputs(onnx_model, tmp_path / "face_first.onnx")
    generator = load_generator(path, "cpu")
    assert [i.name for i in generator.session.get_inputs()] == ["face", "audio"]
    assert max_diff(run(generator, ref, crops, SUBSET), pred[:SUBSET]) <= ONNX_TOL


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ([("face", ["B", 6, 96, 96])], "has 1 inputs; a Wav2Lip ONNX model has 2"),
        ([("image", ["B", 3, 96, 96]), ("mel", ["B", 1, 80, 16])], "does not look like Wav2Lip 96"),
        ([("mel", ["B", 1, 80, 16]), ("face", ["B", 6, 288, 288])], "takes 288px faces; only 96px"),
    ],
    ids=["one input", "no 6-channel input", "288 px"],
)
def test_onnx_with_wrong_inputs_is_refused(
    tmp_path: Path, inputs: list[tuple[str, list[int | str]]], expected: str
) -> None:
    pytest.importorskip("onnxruntime")
    path = tiny_onnx(tmp_path / "other.onnx", inputs)
    with pytest.raises(ModelError) as info:
        load_generator(path, "cpu")
    assert "other.onnx" in str(info.value) and expected in str(info.value)


@pytest.mark.parametrize("case", ["missing", "corrupt"])
def test_onnx_missing_or_corrupt(tmp_path: Path, case: str) -> None:
    pytest.importorskip("onnxruntime")
    path = tmp_path / "wav2lip_gan_96.onnx"
    if case == "corrupt":
        path.write_bytes(b"\x08\x07" + bytes(100))
    with pytest.raises(ModelError) as info:
        load_generator(path, "cpu")
    message = str(info.value)
    assert "wav2lip_gan_96.onnx" in message
    if case == "missing":
        assert MODELS_FOLDER in message and LICENCE_WORDS in message
    else:
        assert "Cannot load" in message


def test_missing_onnxruntime_is_a_dependency_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "wav2lip_96.onnx"
    path.write_bytes(b"not read: onnxruntime is looked for first")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(DependencyError, match=r"pip install onnxruntime.*\.pth/\.safetensors"):
        load_generator(path, "cpu")


# ---------------------------------------------------------------------------------------------
# 7. devices


def no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)


def test_auto_device_is_cpu_without_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    no_accelerator(monkeypatch)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_auto_device_here() -> None:
    want = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == want
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "cuda:1", "mps"])
def test_absent_accelerator_is_an_input_error(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    no_accelerator(monkeypatch)
    with pytest.raises(InputError) as info:
        resolve_device(name)
    message = str(info.value)
    assert f"Device {name!r} asked for" in message and ("CUDA" in message or "MPS" in message)
    assert "use --device cpu" in message


def test_unknown_device_is_an_input_error() -> None:
    with pytest.raises(InputError) as info:
        resolve_device("bogus")
    assert "Unknown device 'bogus'" in str(info.value) and "auto, cpu, cuda" in str(info.value)


def test_fp16_on_cpu_is_an_input_error(checkpoint: Path) -> None:
    with pytest.raises(InputError, match="float16 needs a GPU"):
        load_generator(checkpoint, "cpu", torch.float16)
