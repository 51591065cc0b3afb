"""Fuzzing the loaders: corrupt headers, truncations and flipped bytes of small valid media files
(mp4, mov, mkv, webm, wav, mp3, flac, ogg, m4a, png) fed to ``probe``, ``iter_frames`` and
``load_audio``.

The rule checked on every example: the call returns valid output (a sane ``VideoInfo``, RGB uint8
frames, a finite float32 ``Waveform``) or raises the library's own ``VideoError``/``AudioError``
(whose message names the file) — never another exception, never a hang, never a crash.

The examples run in a child process (``python tests/media/test_fuzz.py SECONDS OUT``) so that a hang or
a crash inside FFmpeg cannot take pytest down: a per-call watchdog (``faulthandler``) kills the
child after ``CALL_TIMEOUT_S`` and prints where it hung, an address-space limit turns a runaway
allocation into a MemoryError, and the input being tried is always on disk, so the parent can
keep it as a finding. Hypothesis generates the mutations; the child keeps calling the
``@given`` function until its time budget is spent and reports how many examples ran.

Default run: ~20 s. ``-m slow``: 5 minutes.
"""

from __future__ import annotations

import faulthandler
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from fractions import Fraction
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAST_BUDGET_S = 20
SLOW_BUDGET_S = 300
CALL_TIMEOUT_S = 20
MEMORY_LIMIT = 4 << 30


# --- seeds: small valid files ----------------------------------------------------------------


def _video_seed(path: Path, codec: str, audio: str | None, pix_fmt: str = "yuv420p", n: int = 6) -> Path:
    import av
    import numpy as np

    rng = np.random.default_rng(len(path.name))
    options = {"movflags": "+faststart"} if path.suffix == ".mov" else {}
    with av.open(str(path), "w", options=options) as out:
        stream = out.add_stream(codec, rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = 32, 24, pix_fmt
        sound = out.add_stream(audio, rate=48000, layout="mono") if audio else None
        for i in range(n):
            image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
        if sound is not None:
            _encode_tone(out, sound, 48000, 0.24)
    return path


def _encode_tone(out, stream, rate: int, seconds: float) -> None:
    import av
    import numpy as np

    total = int(rate * seconds)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(total) / rate)).astype(np.float32)
    size = stream.codec_context.frame_size or 1024
    fmt = stream.codec_context.format.name
    for start in range(0, total, size):
        block = tone[None, start : start + size]
        if fmt.startswith("s16"):
            block = (block * 32767).astype(np.int16)
        elif fmt.startswith("s32"):
            block = (block * 2147483647).astype(np.int32)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format=fmt, layout="mono")
        frame.sample_rate, frame.pts = rate, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def _audio_seed(path: Path, codec: str, rate: int = 48000, fmt: str | None = None) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        if fmt:
            stream.format = fmt
        stream.codec_context.open()
        _encode_tone(out, stream, rate, 0.2)
    return path


def make_seeds(folder: Path) -> list[Path]:
    """One small valid file per container the users feed (~2-20 KB each)."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    seeds = [
        _video_seed(folder / "seed.mp4", "libx264", "aac"),
        _video_seed(folder / "seed.mov", "libx264", None),
        _video_seed(folder / "seed.mkv", "ffv1", "flac", pix_fmt="bgr0"),
        _video_seed(folder / "seed.webm", "libvpx", "libopus"),
        _audio_seed(folder / "seed.wav", "pcm_s16le", 16000, "s16"),
        _audio_seed(folder / "seed.mp3", "libmp3lame", 44100),
        _audio_seed(folder / "seed.flac", "flac", 22050),
        _audio_seed(folder / "seed.ogg", "libopus", 48000),
        _audio_seed(folder / "seed.m4a", "aac", 44100),
    ]
    image = np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "seed.png"), image)
    seeds.append(folder / "seed.png")
    return seeds


# --- the property -----------------------------------------------------------------------------


def check_file(path: Path) -> None:
    """Every loader either gives valid output or raises its own error naming the file."""
    import numpy as np

    from lipsync.media.audio import load_audio
    from lipsync.errors import AudioError, VideoError
    from lipsync.media.video import iter_frames, probe

    try:
        info = probe(path)
    except VideoError as exc:
        assert path.name in str(exc), str(exc)
    else:
        assert info.width > 0 and info.height > 0 and info.fps > 0 and info.frame_count >= 0, info
    try:
        for count, frame in enumerate(iter_frames(path)):
            assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3, frame.shape
            if count >= 200:  # a seed has 6 frames: a header that claims millions is not a hang
                break
    except VideoError as exc:
        assert path.name in str(exc), str(exc)
    try:
        wave = load_audio(path)
    except AudioError as exc:
        assert path.name in str(exc), str(exc)
    else:
        assert wave.samples.ndim == 2 and wave.num_samples > 0 and wave.sample_rate > 0
        assert wave.samples.dtype == np.float32 and np.isfinite(wave.samples).all()


def mutate(data: bytes, ops: list[tuple[str, float, bytes]]) -> bytes:
    """Apply (kind, where in 0..1, bytes) mutations: flip, overwrite, insert, delete, truncate, header."""
    blob = bytearray(data)
    for kind, where, payload in ops:
        at = int(where * len(blob)) if blob else 0
        if kind == "flip" and blob:
            at = min(at, len(blob) - 1)
            blob[at] ^= payload[0] if payload and payload[0] else 0xFF
        elif kind == "overwrite":
            blob[at : at + len(payload)] = payload
        elif kind == "insert":
            blob[at:at] = payload
        elif kind == "delete":
            del blob[at : at + max(1, len(payload))]
        elif kind == "truncate":
            del blob[at:]
        elif kind == "header":
            blob[: len(payload)] = payload
    return bytes(blob)


# --- the child process ------------------------------------------------------------------------


def run_worker(budget_s: float, out: Path) -> None:
    """Fuzz for ``budget_s`` seconds; write stats (and any failure) to ``out``/stats.json."""
    import resource

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    faulthandler.enable()  # a crash in C prints the Python stack it happened under
    out.mkdir(parents=True, exist_ok=True)
    seeds = make_seeds(out / "seeds")
    blobs = [(p.suffix, p.read_bytes()) for p in seeds]
    work = out / "work"
    work.mkdir(exist_ok=True)
    stats = {"examples": 0, "per_suffix": {}, "failures": [], "seconds": 0.0}
    t0 = time.monotonic()

    op = st.tuples(
        st.sampled_from(["flip", "flip", "overwrite", "insert", "delete", "truncate", "header"]),
        st.floats(0.0, 1.0, allow_nan=False),
        st.binary(min_size=1, max_size=48),
    )

    @settings(max_examples=50, deadline=None, database=None, suppress_health_check=list(HealthCheck), print_blob=True)
    @given(which=st.integers(0, len(blobs) - 1), ops=st.lists(op, min_size=1, max_size=4), lie=st.booleans())
    def one(which: int, ops: list[tuple[str, float, bytes]], lie: bool) -> None:
        if time.monotonic() - t0 > budget_s:
            return  # budget spent: let hypothesis finish this batch quickly
        suffix, data = blobs[which]
        if lie:  # the wrong extension: a webm renamed .mp4, an mp3 renamed .wav, ...
            suffix = blobs[(which + 1) % len(blobs)][0]
        path = work / f"fuzz{suffix}"
        path.write_bytes(mutate(data, ops))
        stats["examples"] += 1
        stats["per_suffix"][suffix] = stats["per_suffix"].get(suffix, 0) + 1
        faulthandler.dump_traceback_later(CALL_TIMEOUT_S, exit=True)
        try:
            check_file(path)
        finally:
            faulthandler.cancel_dump_traceback_later()

    while time.monotonic() - t0 < budget_s:
        try:
            one()
        except Exception as exc:  # noqa: BLE001 - a finding: keep the input and the traceback, go on
            kept = out / f"finding-{len(stats['failures'])}{next(work.iterdir()).suffix}"
            shutil.copy(next(work.iterdir()), kept)
            stats["failures"].append({"input": str(kept), "error": "".join(traceback.format_exception(exc))[-3000:]})
            if len(stats["failures"]) >= 5:
                break
    stats["seconds"] = round(time.monotonic() - t0, 1)
    (out / "stats.json").write_text(json.dumps(stats, indent=1))


# --- the tests --------------------------------------------------------------------------------


def fuzz(tmp_path: Path, budget_s: float) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    cmd = [sys.executable, str(Path(__file__).resolve()), str(budget_s), str(tmp_path)]
    try:
        res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=budget_s + 90, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        stuck = list((tmp_path / "work").glob("fuzz*"))
        pytest.fail(f"the fuzzer hung (input kept at {stuck}); its output: {exc.stderr!s:.3000}")
    stats_file = tmp_path / "stats.json"
    if res.returncode != 0 or not stats_file.exists():
        inputs = sorted((tmp_path / "work").glob("fuzz*"), key=lambda p: p.stat().st_mtime)
        crash = "\n".join(line for line in res.stderr.splitlines() if "imdecode" not in line and line.strip())
        pytest.fail(f"the fuzz child died (rc {res.returncode}) reading {inputs[-1:]}:\n{crash[-4000:]}")
    stats = json.loads(stats_file.read_text())
    print(f"fuzz: {stats['examples']} examples in {stats['seconds']} s, by type {stats['per_suffix']}")
    assert not stats["failures"], "\n\n".join(f["input"] + "\n" + f["error"] for f in stats["failures"])
    assert stats["examples"] >= 20, stats
    return stats


def test_fuzz_loaders(tmp_path: Path) -> None:
    fuzz(tmp_path, FAST_BUDGET_S)


@pytest.mark.slow
def test_fuzz_loaders_long(tmp_path: Path) -> None:
    fuzz(tmp_path, SLOW_BUDGET_S)


def test_seeds_are_valid(tmp_path: Path) -> None:
    """The mutations start from files every loader accepts (else the fuzz proves little)."""
    from lipsync.media.audio import load_audio
    from lipsync.media.video import iter_frames, probe

    for seed in make_seeds(tmp_path):
        if seed.suffix in (".mp4", ".mov", ".mkv", ".webm", ".png"):
            assert probe(seed).width == 32
            assert len(list(iter_frames(seed))) == (1 if seed.suffix == ".png" else 6)
        if seed.suffix not in (".mov", ".png"):
            assert load_audio(seed).num_samples > 0


if __name__ == "__main__":
    run_worker(float(sys.argv[1]), Path(sys.argv[2]))
