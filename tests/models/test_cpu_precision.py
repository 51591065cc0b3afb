"""CPU precisions (lipsync.models.wav2lip.cpu): exact stays the reference's float32 (torch by
default; OpenVINO f32 within 1e-4 of the parity fixture where asked, torch without OpenVINO); fast
(bf16) and fastest (int8) stay within their measured quality on the shared checkpoint; a CPU
without BF16/VNNI falls back cleanly, with a note; converted models are cached atomically; the
weights' digest is remembered until the file changes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lipsync.models.wav2lip import cpu, ir_cache
from lipsync.models.wav2lip.generator import OpenVinoGenerator, TorchGenerator, load_generator

from conftest import FIXTURE

CHECKPOINT = FIXTURE / "random_wav2lip.pth"

pytestmark = pytest.mark.skipif(not CHECKPOINT.is_file(), reason="the shared Wav2Lip fixture is not here")

HAS_OPENVINO = cpu._openvino() is not None and cpu._nncf_available()
HAS_OPENVINO_ONLY = cpu._openvino() is not None
CAPS = cpu.cpu_capabilities()


@pytest.fixture(autouse=True)
def _cache_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "user-cache"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def off_by_more_than_2_levels(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(np.round(a * 255.0) - np.round(b * 255.0)) > 2))


def run(generator: object, case: dict[str, np.ndarray]) -> np.ndarray:
    return generator.generate(case["faces96"], case["mel_chunks"], 8)  # type: ignore[attr-defined]


# --- the plan


def test_plan_keeps_what_the_cpu_can_do_and_says_why_otherwise() -> None:
    both = {"bf16", "int8"}
    assert cpu.plan_precision("exact", set(), True, True) == ("exact", None)
    assert cpu.plan_precision("fast", both, True, True) == ("fast", None)
    assert cpu.plan_precision("fastest", both, True, True) == ("fastest", None)
    got, note = cpu.plan_precision("fast", set(), True, True)
    assert got == "exact" and note is not None and "BF16" in note and "\n" not in note
    got, note = cpu.plan_precision("fastest", {"bf16"}, True, True)
    assert got == "fast" and note is not None and "VNNI" in note
    got, note = cpu.plan_precision("fastest", both, False, False)
    assert got == "fast" and note is not None and "pip install openvino nncf" in note
    got, note = cpu.plan_precision("fastest", set(), False, False)
    assert got == "exact" and note is not None and "using exact" in note


def test_exact_is_the_float32_torch_network() -> None:
    generator = load_generator(CHECKPOINT, "cpu", precision="exact")
    assert type(generator) is TorchGenerator
    assert next(generator.module.parameters()).dtype == torch.float32
    assert generator.note is None


@pytest.mark.skipif(not HAS_OPENVINO_ONLY, reason="needs openvino")
def test_exact_on_openvino_stays_within_1e_4_of_the_parity_fixture(expected, weights) -> None:
    generator = load_generator(weights, "cpu", precision="exact", exact_runtime="openvino")
    assert isinstance(generator, OpenVinoGenerator) and generator.precision == "exact" and generator.note is None
    assert generator.device.type == "cpu" and str(generator.device) == "cpu"  # no torch.device: torch stays unloaded
    out = run(generator, expected)
    assert out.dtype == np.float32 and out.shape == expected["pred"].shape
    np.testing.assert_allclose(out, expected["pred"], atol=1e-4, rtol=0)  # measured 1.9e-5
    # a frame's result does not depend on its batch
    alone = generator.generate(expected["faces96"][5:8], expected["mel_chunks"][5:8], 3)
    np.testing.assert_array_equal(alone, out[5:8])


def test_exact_falls_back_to_torch_float32_without_openvino(monkeypatch: pytest.MonkeyPatch, weights) -> None:
    monkeypatch.setattr(cpu, "_openvino", lambda: None)  # as if `import openvino` failed
    generator = load_generator(weights, "cpu", precision="exact", exact_runtime="openvino")
    assert type(generator) is TorchGenerator and generator.note is None
    assert next(generator.module.parameters()).dtype == torch.float32


def test_a_cpu_without_bf16_falls_back_to_exact_with_a_note(monkeypatch: pytest.MonkeyPatch, expected, weights) -> None:
    monkeypatch.setattr(cpu, "cpu_capabilities", lambda core=None: set())
    for asked in ("fast", "fastest"):
        generator = load_generator(weights, "cpu", precision=asked)
        assert type(generator) is TorchGenerator
        assert generator.note is not None and "using exact" in generator.note
    np.testing.assert_allclose(run(generator, expected), expected["pred"], atol=1e-4)


def test_cpuinfo_flags_decide_without_openvino(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "_openvino", lambda: None)
    monkeypatch.setattr(cpu, "_cpuinfo_flags", lambda: {"avx2", "avx512f", "avx512_vnni"})
    assert cpu.cpu_capabilities() == {"int8"}
    monkeypatch.setattr(cpu, "_cpuinfo_flags", lambda: {"avx2", "amx_bf16", "amx_int8"})
    assert cpu.cpu_capabilities() == {"bf16", "int8"}


# --- quality on the shared checkpoint (figures measured with bench/quality --precision)


@pytest.mark.skipif(not {"avx512_bf16", "amx_bf16"} & cpu._cpuinfo_flags(), reason="this CPU has no BF16")
def test_torch_bf16_without_openvino_is_close_to_exact(monkeypatch: pytest.MonkeyPatch, expected, weights) -> None:
    monkeypatch.setattr(cpu, "_openvino", lambda: None)
    monkeypatch.setattr(cpu, "_cpuinfo_flags", lambda: {"avx512_bf16"})
    generator = load_generator(weights, "cpu", precision="fast")
    assert next(generator.module.parameters()).dtype == torch.bfloat16
    out = run(generator, expected)
    assert out.dtype == np.float32 and out.shape == expected["pred"].shape
    assert psnr(out, expected["pred"]) >= 35.0  # measured 38.5 dB
    fastest = load_generator(weights, "cpu", precision="fastest")
    assert "pip install openvino nncf" in (fastest.note or "")


def test_batchnorm_folding_keeps_the_float32_result(expected) -> None:
    module = load_generator(CHECKPOINT, "cpu").module
    mel = torch.from_numpy(expected["mel_chunks"][:4]).reshape(-1, 1, 80, 16)
    from lipsync.models.wav2lip.preprocess import model_inputs

    faces = torch.from_numpy(model_inputs(expected["faces96"][:4]))
    with torch.inference_mode():
        before = module(mel, faces)
        after = cpu.fold_batchnorm(module)(mel, faces)
    torch.testing.assert_close(after, before, atol=2e-5, rtol=0)


def yardstick(case: dict[str, np.ndarray]) -> tuple[float, float]:
    """(PSNR, share > 2 levels off) of exact's output when every input pixel moves by -1, 0 or +1
    level (what another video decoder does): the error the default precision may not exceed."""
    rng = np.random.default_rng(0)
    moved = np.clip(case["faces96"].astype(np.int16) + rng.integers(-1, 2, case["faces96"].shape), 0, 255)
    out = load_generator(CHECKPOINT, "cpu").generate(moved.astype(np.uint8), case["mel_chunks"], 8)
    return psnr(out, case["pred"]), off_by_more_than_2_levels(out, case["pred"])


@pytest.mark.skipif(not HAS_OPENVINO or "bf16" not in CAPS, reason="needs openvino + nncf and a BF16 CPU")
def test_fast_with_openvino_is_within_the_yardstick_of_exact(expected, weights) -> None:
    generator = load_generator(weights, "cpu", precision="fast")
    assert isinstance(generator, OpenVinoGenerator) and generator.note is None
    out = run(generator, expected)
    stick_db, stick_share = yardstick(expected)  # measured 34.1 dB, 54 % of values > 2 levels off
    assert psnr(out, expected["pred"]) >= max(35.0, stick_db)  # measured 38.5 dB
    assert off_by_more_than_2_levels(out, expected["pred"]) <= stick_share  # measured 35 %
    # a frame's result does not depend on its batch
    alone = generator.generate(expected["faces96"][5:8], expected["mel_chunks"][5:8], 3)
    np.testing.assert_array_equal(alone, out[5:8])


@pytest.mark.skipif(not HAS_OPENVINO or not {"bf16", "int8"} <= CAPS, reason="needs openvino + nncf, BF16 and VNNI")
def test_fastest_calibrates_once_and_is_cached(expected, weights) -> None:
    generator = load_generator(weights, "cpu", precision="fastest")
    assert isinstance(generator, OpenVinoGenerator) and not generator.ready
    out = run(generator, expected)  # calibrates on these faces
    assert generator.ready
    assert psnr(out, expected["pred"]) >= 26.0  # measured 27.7 dB: below the yardstick, so not the default
    cached = sorted(p.name for p in (weights.parent / cpu.CACHE_FOLDER).iterdir())
    sha = cpu.weights_sha256(weights)[:16]
    assert [n for n in cached if n.endswith(".int8.xml")] and [n for n in cached if n.endswith(".int8.bin")]
    assert all(sha in n for n in cached) and not [n for n in cached if "lipsync-tmp" in n]
    again = load_generator(weights, "cpu", precision="fastest")
    assert again.ready  # read from the cache, no calibration
    np.testing.assert_array_equal(run(again, expected), out)


@pytest.mark.skipif(not HAS_OPENVINO, reason="needs openvino")
def test_the_cache_goes_to_the_user_folder_when_the_weights_folder_is_not_writable(tmp_path: Path) -> None:
    import openvino as ov

    weights = tmp_path / "w.pth"
    weights.write_bytes(b"not really weights")
    (tmp_path / cpu.CACHE_FOLDER).write_text("a file where the cache folder would go")
    cache = ir_cache.IrCache(weights, cpu.weights_sha256(weights), "v1")
    param = ov.opset13.parameter([1, 2], np.float32, name="x")
    model = ov.Model([ov.opset13.relu(param)], [param], "tiny")
    stored = cache.store(model, "f32")
    assert stored is not None and stored.parent == cpu.user_cache_dir() / "openvino"
    assert cache.find("f32") == stored and stored.with_suffix(".bin").is_file()


def test_the_command_line_says_when_it_falls_back(monkeypatch: pytest.MonkeyPatch, capsys, weights) -> None:
    from lipsync.cli._model import load_model
    from lipsync.options import ModelOptions

    monkeypatch.setattr(cpu, "cpu_capabilities", lambda core=None: set())
    generator = load_model(ModelOptions(checkpoint=str(weights), device="cpu", precision="fast"))
    # the command line's exact: OpenVINO f32 where it is installed, else torch float32
    assert type(generator) is (OpenVinoGenerator if HAS_OPENVINO_ONLY else TorchGenerator)
    assert getattr(generator, "precision", "exact") == "exact"
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["note: precision fast: this CPU has no BF16 instructions; using exact (float32)."]


def test_reference_and_cluster_drivers_keep_torch_float32(weights) -> None:
    from lipsync.cli._model import load_model
    from lipsync.options import ModelOptions

    generator = load_model(ModelOptions(checkpoint=str(weights), device="cpu", precision="exact"), "torch")
    assert type(generator) is TorchGenerator
    assert next(generator.module.parameters()).dtype == torch.float32


# --- the weights' digest


def test_the_weights_digest_is_remembered_until_the_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    hashed: list[Path] = []
    hash_file = ir_cache._hash_file
    monkeypatch.setattr(ir_cache, "_hash_file", lambda p: hashed.append(p) or hash_file(p))
    path = tmp_path / "w.pth"
    path.write_bytes(b"a" * 1000)
    want = hashlib.sha256(b"a" * 1000).hexdigest()
    assert cpu.weights_sha256(path) == want and len(hashed) == 1
    assert cpu.weights_sha256(path) == want and len(hashed) == 1  # remembered: not read again
    records = list((tmp_path / "cache" / "resync-lipsync" / "sha256").iterdir())
    assert len(records) == 1 and records[0].suffix == ".json"  # no temporary file left
    # same size, new bytes and a later mtime: hashed again
    stat = path.stat()
    path.write_bytes(b"b" * 1000)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cpu.weights_sha256(path) == hashlib.sha256(b"b" * 1000).hexdigest() and len(hashed) == 2
    # the same bytes under another path: its own record
    other = tmp_path / "copy.pth"
    other.write_bytes(path.read_bytes())
    assert cpu.weights_sha256(other) == hashlib.sha256(b"b" * 1000).hexdigest() and len(hashed) == 3
    # a damaged record is not trusted
    for record in (tmp_path / "cache" / "resync-lipsync" / "sha256").iterdir():
        record.write_text("{not json")
    assert cpu.weights_sha256(path) == hashlib.sha256(b"b" * 1000).hexdigest() and len(hashed) == 4
    assert cpu.weights_sha256(path, remember=False) == hashlib.sha256(b"b" * 1000).hexdigest() and len(hashed) == 5
