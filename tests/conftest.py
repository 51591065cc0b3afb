"""Shared test fixtures: where ../shared is, the reference checkpoint, small synthetic media."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest


def shared_dir() -> Path:
    env = os.environ.get("LIPSYNC_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


SHARED = shared_dir()
FIXTURE = SHARED / "fixtures" / "wav2lip_reference"
MEDIA = SHARED / "media"
CHECKPOINT = FIXTURE / "random_wav2lip.pth"


def sigint_default() -> None:
    """``preexec_fn`` for a child that must react to Ctrl-C: a shell that runs a job in the
    background (as CI may) starts it with SIGINT ignored, and Python keeps it ignored."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data missing: {path} (set LIPSYNC_SHARED to the shared/ folder)")
    return path


@pytest.fixture(scope="session")
def checkpoint() -> Path:
    return need(CHECKPOINT)


@pytest.fixture(scope="session")
def generator(checkpoint: Path):
    from lipsync.models.wav2lip.generator import load_generator

    return load_generator(checkpoint, "cpu")


@pytest.fixture(scope="session")
def expected():
    """Case A of the parity fixture (frames, 96² BGR crops ``faces96``, ``mel_chunks``, the original's ``pred``, …)."""
    import numpy as np

    return dict(np.load(need(FIXTURE / "case_a" / "expected.npz")))


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shared checkpoint in a test folder: the converted models are cached beside it."""
    path = tmp_path_factory.mktemp("weights") / CHECKPOINT.name
    path.write_bytes(need(CHECKPOINT).read_bytes())
    return path


RAY_HOME: list[Path] = []  # the folder ray_local made, for a test that starts a Ray of its own


@contextlib.contextmanager
def ray_environment(home: Path):
    """HOME, the temp folders and Ray's usage report pointed at ``home`` / off for the block:
    Ray 2.60 writes an auth token under HOME when it starts, and its processes keep the
    environment they were started with. Restored afterwards, so later tests see the real HOME."""
    names = ("HOME", "TMPDIR", "RAY_TMPDIR", "RAY_USAGE_STATS_ENABLED")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(HOME=str(home), TMPDIR=str(home), RAY_TMPDIR=str(home), RAY_USAGE_STATS_ENABLED="0")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_local_ray(ray) -> None:
    with ray_environment(RAY_HOME[0]):
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory: pytest.TempPathFactory):
    """A real local Ray for the cluster tests (tests/cluster): 2 CPUs, HOME and its temp folder
    under the test's tmp folder while it starts, usage stats off. Skipped where Ray is absent."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'comfyui-resync[cluster]'")
    RAY_HOME[:] = [tmp_path_factory.mktemp("ray")]
    start_local_ray(ray)
    try:
        yield ray
    finally:
        ray.shutdown()  # (a test may have shut it down and started its own meanwhile)


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory: pytest.TempPathFactory):
    """The library's user cache (converted models, remembered weight digests) in a folder of the
    test session, so tests neither read nor write the real ~/.cache (child processes inherit it)."""
    folder = tmp_path_factory.mktemp("cache")
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    try:
        yield folder
    finally:
        if saved is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = saved
