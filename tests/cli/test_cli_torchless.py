"""A CPU job whose OpenVINO model is already converted never imports torch (issue 13: torch alone
costs ~500 MiB of memory and ~1.7 s of start-up): ``run`` in fast, fastest and exact, ``segment`` and
``batch``, each in a fresh interpreter, with the model converted beforehand beside a copy of the
shared checkpoint. ``--reference`` keeps torch's float32 (the original's numbers)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CHECKPOINT, FIXTURE, need

from lipsync.models.wav2lip import cpu

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(cpu._openvino() is None, reason="needs openvino")

JOB = """
import sys
from lipsync.cli import main
rc = main(sys.argv[1:])
print("torch imported:", "torch" in sys.modules)
sys.exit(rc)
"""


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shared checkpoint whose f32 (and, where the CPU and NNCF allow, int8) OpenVINO
    models are converted and cached beside it, made in this (torch-loaded) process."""
    from lipsync.models.wav2lip.generator import OpenVinoGenerator, load_generator

    folder = tmp_path_factory.mktemp("torchless")
    weights = folder / CHECKPOINT.name
    shutil.copyfile(need(CHECKPOINT), weights)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(folder / "user-cache"))
        load_generator(weights, "cpu", precision="exact", exact_runtime="openvino")  # the f32 model
        fastest = load_generator(weights, "cpu", precision="fastest")
        if isinstance(fastest, OpenVinoGenerator) and not fastest.ready:
            case = np.load(need(FIXTURE / "case_a" / "expected.npz"))
            fastest.calibrate(case["faces96"][:16], case["mel_chunks"][:16])  # the int8 model
    assert list((folder / cpu.CACHE_FOLDER).glob("*.f32.xml"))
    return weights


def job(weights: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(weights.parent / "user-cache")}
    return subprocess.run([sys.executable, "-c", JOB, *args, "--checkpoint", str(weights), "--device", "cpu"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, check=False)


def torch_imported(done: subprocess.CompletedProcess[str]) -> bool:
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1] == "torch imported: True"


@pytest.mark.parametrize("precision", ["fast", "fastest", "exact"])
def test_a_cached_cpu_job_never_imports_torch(cached: Path, tmp_path: Path, precision: str) -> None:
    out = tmp_path / "out.mp4"
    done = job(cached, str(FIXTURE / "face.mp4"), str(FIXTURE / "speech_3s.wav"), "-o", str(out), "--precision", precision, "-q")
    assert not torch_imported(done)
    assert out.is_file() and out.stat().st_size > 0


def test_segment_and_batch_never_import_torch(cached: Path, tmp_path: Path) -> None:
    video, audio = tmp_path / "face.mp4", tmp_path / "speech.wav"
    shutil.copyfile(FIXTURE / "face.mp4", video)
    shutil.copyfile(FIXTURE / "speech_3s.wav", audio)
    segment = job(cached, "segment", str(video), str(audio), "--start", "0.5", "--end", "1.5", "-o",
                  str(tmp_path / "seg.mp4"), "--precision", "fast")
    assert not torch_imported(segment) and (tmp_path / "seg.mp4").is_file()
    batch = job(cached, "batch", "--audio", str(audio), "--videos", str(video), "-o", str(tmp_path / "batch"),
                "--root", str(tmp_path), "--no-zip", "--precision", "fast", "-q")
    assert not torch_imported(batch) and list((tmp_path / "batch").glob("*.mp4"))


def test_reference_keeps_torch_float32(cached: Path, tmp_path: Path) -> None:
    done = job(cached, str(FIXTURE / "face.mp4"), str(FIXTURE / "speech_3s.wav"), "-o", str(tmp_path / "ref.mp4"),
               "--reference", "-q")
    assert torch_imported(done)
