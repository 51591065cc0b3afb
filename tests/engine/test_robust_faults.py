"""Faults mid-run (issue #6): a stop request, an interrupt or an exception while decoding, while
the network runs and while encoding leaves no partial file under the output name, no temporary
file and no running thread, and the next run succeeds; Ctrl-C in the CLI exits 130 with nothing
written, in each phase; a run after a crash clears the crash's leftovers.

The host's interrupt button belongs to the node tests (``tests/nodes/test_nodes*.py``); one exception
on one item of a batch is tested with the batch mode, in ``tests/engine/test_batch.py`` (skipped below).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import sigint_default
from fakes import write_video
from robust import Identity, assert_cli_fails, assert_nothing_written, leftovers, output_streams, run_cli, sync, tone

from lipsync.media import _encode, atomic
from lipsync.errors import Cancelled
from lipsync.media.video import TEMP_MARKER, VideoWriter, cleanup_stale_temp_files

ROOT = Path(__file__).resolve().parents[2]
FRAMES = 100


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four seconds of small frames: long enough for every phase to be under way."""
    frames = [np.full((64, 64, 3), (3 * i) % 256, np.uint8) for i in range(FRAMES)]
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mkv", frames)


@pytest.fixture
def threads_stop() -> object:
    """After the test, the pipeline's worker threads are gone (none left decoding or encoding)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in before and t.name.startswith("lipsync")]
        if not extra:
            return
        time.sleep(0.05)
    pytest.fail(f"worker threads still running: {extra}")


def then_a_run_succeeds(clip: Path, out: Path) -> None:
    result = sync(clip, tone(FRAMES / 25), out, batch_size=4, chunk_batches=2)
    assert result.frames == FRAMES and output_streams(out)["frames"] == FRAMES
    assert leftovers(out.parent) == []


def run(clip: Path, out: Path, **kwargs: object) -> object:
    return sync(clip, tone(FRAMES / 25), out, batch_size=4, chunk_batches=2, **kwargs)


# --- cancel and interrupt in each phase ---------------------------------------------------------


def test_stop_while_decoding(clip: Path, tmp_path: Path, threads_stop: object) -> None:
    """Stopped at the first check: the decoder thread is still reading ahead, and stops too."""
    from lipsync.engine.lipsync import LipSyncOptions, lipsync_video

    out = tmp_path / "out.mp4"
    with pytest.raises(Cancelled, match="out.mp4 was not written"):
        lipsync_video(
            clip,
            tone(4),
            out,
            Identity(),
            LipSyncOptions.of(box=_box(), batch_size=4, chunk_batches=2),
            should_stop=lambda: True,
        )
    assert_nothing_written(out)
    then_a_run_succeeds(clip, out)


def _box():
    from robust import FULL_BOX

    return FULL_BOX


def test_stop_while_the_network_runs(clip: Path, tmp_path: Path, threads_stop: object) -> None:
    from lipsync.engine.lipsync import LipSyncOptions, lipsync_video

    out = tmp_path / "out.mp4"
    checks = []

    def stop_after_three_chunks() -> bool:
        checks.append(1)
        return len(checks) > 3

    # chunks of 8 frames, the first cut to one batch of 4 (ramp_cuts): 4 + 4 + 8 frames
    with pytest.raises(Cancelled, match="Stopped after 16 of 100 frames"):
        lipsync_video(
            clip,
            tone(4),
            out,
            Identity(),
            LipSyncOptions.of(box=_box(), batch_size=4, chunk_batches=2),
            should_stop=stop_after_three_chunks,
        )
    assert_nothing_written(out)
    then_a_run_succeeds(clip, out)


class InterruptedNetwork(Identity):
    """Raises ``error`` on its ``at``-th call, as Ctrl-C or a CUDA error would."""

    def __init__(self, at: int, error: BaseException) -> None:
        super().__init__()
        self.at, self.error = at, error

    def __call__(self, mel: np.ndarray, faces: np.ndarray) -> np.ndarray:
        if self.calls + 1 == self.at:
            raise self.error
        return super().__call__(mel, faces)


@pytest.mark.parametrize(
    "error", [KeyboardInterrupt(), RuntimeError("CUDA out of memory")], ids=["Ctrl-C", "exception"]
)
def test_interrupt_inside_the_network(clip: Path, tmp_path: Path, threads_stop: object, error: BaseException) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(type(error)):
        run(clip, out, network=InterruptedNetwork(5, error))
    assert_nothing_written(out)
    then_a_run_succeeds(clip, out)


@pytest.mark.parametrize("error", [KeyboardInterrupt(), OSError("device vanished")], ids=["Ctrl-C", "exception"])
def test_interrupt_while_encoding(
    clip: Path, tmp_path: Path, threads_stop: object, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    """The writer thread fails at frame 40, after the encoder has produced packets."""
    out = tmp_path / "out.mp4"
    real_write = VideoWriter.write

    def write(self: VideoWriter, frame: np.ndarray) -> None:
        if self.frames_written == 40:
            raise error
        real_write(self, frame)

    monkeypatch.setattr(VideoWriter, "write", write)
    with pytest.raises(type(error)):
        run(clip, out)
    assert_nothing_written(out)
    monkeypatch.setattr(VideoWriter, "write", real_write)
    then_a_run_succeeds(clip, out)


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), ("out of memory", "--batch-size")),
        (MemoryError(), ("out of memory", "--batch-size")),
        (ValueError("an unforeseen bug\nsecond line"), ("unexpected ValueError: an unforeseen bug", "LIPSYNC_DEBUG")),
    ],
    ids=["CUDA out of memory", "MemoryError", "a bug"],
)
def test_unforeseen_errors_in_the_cli_are_one_line(
    clip: Path, tmp_path: Path, capsys, monkeypatch, error: Exception, words: tuple[str, ...]  # noqa: ANN001
) -> None:
    import soundfile as sf

    audio = tmp_path / "voice.wav"
    sf.write(audio, tone(1.0).samples.T, 16000)
    out = tmp_path / "out.mp4"
    err = assert_cli_fails(
        clip, audio, out, capsys, monkeypatch, *words, "No output was written", network=InterruptedNetwork(2, error)
    )
    assert "second line" not in err
    monkeypatch.setenv("LIPSYNC_DEBUG", "1")  # the traceback, for a bug report
    with pytest.raises(type(error)):
        run_cli(
            [clip, audio, "-o", out, "--checkpoint", "x.pth", "--box", "0", "64", "0", "64"],
            capsys,
            monkeypatch,
            InterruptedNetwork(2, error),
        )
    assert_nothing_written(out)


# --- Ctrl-C in the CLI, in each phase --------------------------------------------------------------

_INTERRUPTER = """
import os, signal, sys
sys.path.insert(0, sys.argv[2])
phase = sys.argv[1]
import lipsync.models.wav2lip.generator, lipsync.engine.stages
from lipsync.media import _encode
from robust import Identity

def interrupt():
    os.kill(os.getpid(), signal.SIGINT)

class Net(Identity):
    def __call__(self, mel, faces):
        if phase == "inference" and self.calls == 3:
            interrupt()
        return super().__call__(mel, faces)

lipsync.models.wav2lip.generator.load_generator = lambda *a, **k: Net()
real_frames, real_write = lipsync.engine.stages.iter_frames, _encode.VideoWriter.write

def frames(*args, **kwargs):
    for i, frame in enumerate(real_frames(*args, **kwargs)):
        if phase == "decode" and i == 30:
            interrupt()
        yield frame

def write(self, frame):
    if phase == "encode" and self.frames_written == 30:
        interrupt()
    real_write(self, frame)

lipsync.engine.stages.iter_frames, _encode.VideoWriter.write = frames, write
from lipsync.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT semantics")
def test_ctrl_c_in_the_cli_in_each_phase(clip: Path, tmp_path: Path) -> None:
    """A real SIGINT, sent from inside the decoder thread, the network call and the writer thread."""
    audio = tmp_path / "voice.wav"
    import soundfile as sf

    sf.write(audio, tone(4.0).samples.T, 16000)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = {}
    for phase in ("decode", "inference", "encode"):
        folder = tmp_path / phase
        folder.mkdir()
        args = [
            clip,
            audio,
            "-o",
            folder / "out.mp4",
            "--checkpoint",
            "x.pth",
            "--box",
            "0",
            "64",
            "0",
            "64",
            "-q",
            "--batch-size",
            "4",
        ]
        cmd = [sys.executable, "-c", _INTERRUPTER, phase, str(ROOT / "tests"), *map(str, args)]
        procs[phase] = subprocess.Popen(
            cmd, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT, preexec_fn=sigint_default
        )
    for phase, proc in procs.items():
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 130, f"{phase}: rc {proc.returncode}\n{err}"
        assert err.strip() == "interrupted: no output was written", f"{phase}: {err}"
        assert list((tmp_path / phase).iterdir()) == [], phase
    then_a_run_succeeds(clip, tmp_path / "decode" / "out.mp4")


# --- batches --------------------------------------------------------------------------------------


@pytest.mark.skip(reason="batch isolation is tested with the batch mode: tests/engine/test_batch.py")
def test_an_exception_on_one_batch_item_leaves_the_others() -> None:
    """Covered by tests/engine/test_batch.py (another engineer's): one corrupt video of four, or a video
    without a face or a missing file, fails only its item, and the report says which and why."""


# --- after a crash ---------------------------------------------------------------------------------

_CRASHER = """
import os, signal, sys
import numpy as np
from lipsync.media.video import VideoWriter
writer = VideoWriter(sys.argv[1], 25)
for _ in range(10):
    writer.write(np.zeros((64, 64, 3), np.uint8))
if sys.argv[2] == "crash":
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup of any kind runs
sys.stdout.write("writing\\n")
sys.stdout.flush()
sys.stdin.read()  # a write in progress until the parent says so
writer.close()
"""


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def temp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if TEMP_MARKER in p.name)


def test_a_run_after_a_crash_cleans_up_and_works(clip: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASHER, str(tmp_path / "out.mp4"), "crash"],
        env=env,
        timeout=60,
        capture_output=True,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL
    (leftover,) = temp_files(tmp_path)
    age(leftover, 30)  # the crash was half a minute ago
    then_a_run_succeeds(clip, tmp_path / "out.mp4")
    assert not leftover.exists()


def test_a_write_in_progress_elsewhere_is_never_cleaned(clip: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    other = subprocess.Popen(
        [sys.executable, "-c", _CRASHER, str(tmp_path / "theirs.mp4"), "hold"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout.readline() == "writing\n"
        (theirs,) = temp_files(tmp_path)
        age(theirs, 7200)  # even a file untouched for two hours: its writer holds the lock
        assert cleanup_stale_temp_files(tmp_path) == 0
        assert run(clip, tmp_path / "mine.mp4").frames == FRAMES  # a run beside it leaves it alone too
        assert temp_files(tmp_path) == [theirs]
    finally:
        other.communicate("", timeout=60)
    assert other.returncode == 0
    assert output_streams(tmp_path / "theirs.mp4")["frames"] == 10 and temp_files(tmp_path) == []


def test_cleanup_does_not_touch_this_process_writers(tmp_path: Path) -> None:
    """Where locks are per process (NFS), a sibling writer's file would look free: its name
    (this pid) keeps it; only the age rule applies to it."""
    with VideoWriter(tmp_path / "a.mp4", 25) as writer:
        writer.write(np.zeros((16, 16, 3), np.uint8))
        (temp,) = temp_files(tmp_path)
        age(temp, 60)
        assert cleanup_stale_temp_files(tmp_path) == 0 and temp.exists()
        monkey_unlocked = atomic._try_lock
        try:
            atomic._try_lock = lambda handle: True  # type: ignore[assignment] - as if the lock were free
            assert cleanup_stale_temp_files(tmp_path) == 0
        finally:
            atomic._try_lock = monkey_unlocked
    assert (tmp_path / "a.mp4").is_file() and temp_files(tmp_path) == []
