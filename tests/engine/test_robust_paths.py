"""The file-system side of the bad-input matrix (issue #6): odd names work; a folder that cannot
be written, a full disk or a clash with another run never leaves a half-written file under the
output name, and says what to do.

Permissions: these tests usually run as root, for whom chmod 0o500 means nothing. Then the real
check runs the writer in a child process that drops to the ``nobody`` user, and the CLI's message
is checked in-process with the file system's refusal simulated (PermissionError from ``open``).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch
from fakes import write_video
from robust import Identity, assert_cli_fails, assert_nothing_written, leftovers, output_streams, run_cli, sync, tone

from lipsync.media import _encode, atomic
from lipsync.models.wav2lip.checkpoint import read_state_dict
from lipsync.errors import ModelError, OutputError

ROOT = Path(__file__).resolve().parents[2]
ODD = "vidéo ünïcödé 日本語 😀 (1)"


@pytest.fixture
def media(tmp_path: Path) -> tuple[Path, Path]:
    """A 1 s clip and its audio, in a folder whose name has spaces, accents, CJK and an emoji."""
    folder = tmp_path / f"in {ODD}"
    folder.mkdir()
    video = write_video(folder / f"{ODD}.mkv", [np.full((64, 64, 3), 9 * i, np.uint8) for i in range(25)])
    audio = folder / f"voix {ODD}.wav"
    sf.write(audio, tone(1.0).samples.T, 16000)
    return video, audio


# --- names -------------------------------------------------------------------------------------


def test_spaces_unicode_and_dotdot_everywhere(tmp_path: Path, media: tuple[Path, Path], capsys, monkeypatch) -> None:
    video, audio = media
    (tmp_path / "elsewhere").mkdir()
    via_dotdot = tmp_path / "elsewhere" / ".." / video.parent.name
    out = tmp_path / "elsewhere" / ".." / f"out {ODD}" / ".." / f"résultat {ODD}.mp4"
    rc, err = run_cli(
        [
            via_dotdot / video.name,
            via_dotdot / audio.name,
            "-o",
            out,
            "--checkpoint",
            "x.pth",
            "--box",
            "0",
            "64",
            "0",
            "64",
        ],
        capsys,
        monkeypatch,
        Identity(),
    )
    assert rc == 0, err
    final = tmp_path / f"résultat {ODD}.mp4"
    assert final.is_file() and output_streams(final)["frames"] == 25
    assert leftovers(tmp_path) == []


def test_relative_paths_from_another_working_folder(
    tmp_path: Path, media: tuple[Path, Path], capsys, monkeypatch
) -> None:
    video, audio = media
    work = tmp_path / "work dir"
    work.mkdir()
    monkeypatch.chdir(work)
    rel = Path("..") / video.parent.name
    rc, err = run_cli(
        [
            rel / video.name,
            rel / audio.name,
            "-o",
            Path("..") / "out.mkv",
            "--checkpoint",
            "x.pth",
            "--box",
            "0",
            "64",
            "0",
            "64",
        ],
        capsys,
        monkeypatch,
        Identity(),
    )
    assert rc == 0, err
    assert (tmp_path / "out.mkv").is_file()


def test_checkpoint_path_with_unicode_and_spaces(tmp_path: Path) -> None:
    """The loader opens such paths (the fp16 test in test_robust_models runs one end to end)."""
    folder = tmp_path / f"models {ODD}"
    folder.mkdir()
    other = folder / f"wav2lip {ODD}.pth"
    torch.save({"conv_first.weight": torch.zeros(2, 3, 3, 3)}, str(other))
    with pytest.raises(ModelError, match="image restoration") as caught:
        read_state_dict(other)
    assert other.name in str(caught.value)
    from safetensors.torch import save_file

    save_file({"conv_first.weight": torch.zeros(2, 3, 3, 3)}, str(other.with_suffix(".safetensors")))
    with pytest.raises(ModelError, match="image restoration"):
        read_state_dict(other.with_suffix(".safetensors"))


def test_output_name_at_the_length_limit(tmp_path: Path, media: tuple[Path, Path]) -> None:
    """A 255-byte name is legal; the temporary name beside it must not be longer."""
    video, audio = media
    out = tmp_path / ("é" * 125 + "x.mp4")  # 125×2 + 5 = 255 bytes in UTF-8
    assert len(os.fsencode(out.name)) == 255
    sync(video, audio, out)
    assert out.is_file() and leftovers(tmp_path) == []


def test_output_name_that_is_a_folder_or_has_no_video_suffix(
    tmp_path: Path, media: tuple[Path, Path], capsys, monkeypatch
) -> None:
    video, audio = media
    folder = tmp_path / "result.mp4"
    folder.mkdir()
    with pytest.raises(OutputError, match="a folder has that name"):
        sync(video, audio, folder)
    assert folder.is_dir() and list(folder.iterdir()) == [] and leftovers(tmp_path) == []
    rc, err = run_cli([video, audio, "-o", folder, "--checkpoint", "x.pth"], capsys, monkeypatch, Identity())
    assert rc == 1 and "a folder has that name" in err and err.count("\n") == 0
    for name in ("result", "result.avi", "result.wav"):
        assert_cli_fails(video, audio, tmp_path / name, capsys, monkeypatch, name, ".mp4")


# --- folder not writable -----------------------------------------------------------------------


def write_as_nobody(target: Path) -> str:
    """Run the writer in a forked child that became the ``nobody`` user; its error message."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery from here, leave with os._exit
        code = 0
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            with _encode.VideoWriter(target, 25) as writer:
                writer.write(np.zeros((16, 16, 3), np.uint8))
        except OutputError as exc:
            os.write(write_end, str(exc).encode())
            code = 3
        except BaseException as exc:  # noqa: BLE001 - reported by the parent
            os.write(write_end, repr(exc).encode())
            code = 4
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        message = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3, message
    return message


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder everybody may enter (pytest's tmp_path sits in root's private folder)."""
    folder = Path(tempfile.mkdtemp(prefix="lipsync-perm-"))
    folder.chmod(0o755)
    yield folder
    for sub in folder.iterdir():
        sub.chmod(0o755)
    shutil.rmtree(folder)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions")
def test_output_folder_not_writable_for_real(open_folder: Path) -> None:
    locked = open_folder / "read only"  # may be entered, not written
    locked.mkdir()
    locked.chmod(0o555)
    closed = open_folder / "private"  # may not even be entered
    closed.mkdir()
    closed.chmod(0o700)
    for target in (locked / "out.mp4", locked / "new folder" / "out.mp4", closed / "out.mp4"):
        if os.geteuid() == 0:  # root writes anywhere: drop to nobody in a child
            message = write_as_nobody(target)
        else:
            with pytest.raises(OutputError) as caught, _encode.VideoWriter(target, 25) as writer:
                writer.write(np.zeros((16, 16, 3), np.uint8))
            message = str(caught.value)
        assert "Permission denied" in message and "choose a folder you can write to" in message, message
    assert list(locked.iterdir()) == [] and list(closed.iterdir()) == []


def test_output_folder_not_writable_in_the_cli(tmp_path: Path, media: tuple[Path, Path], capsys, monkeypatch) -> None:
    video, audio = media
    locked = tmp_path / "locked"
    locked.mkdir()

    def refuse(path, *args, **kwargs):
        if Path(path).parent == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(atomic, "open", refuse, raising=False)  # the writer's temporary file
    assert_cli_fails(
        video,
        audio,
        locked / "out.mp4",
        capsys,
        monkeypatch,
        "out.mp4",
        "Permission denied",
        "choose a folder you can write to",
    )


# --- disk full -----------------------------------------------------------------------------------


def test_disk_full_for_real(tmp_path: Path, media: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer's temporary file is /dev/full: every write fails with ENOSPC inside FFmpeg."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    _, audio = media

    def temp_on_full_disk(final: Path):
        temp = final.parent / f".{final.stem}{_encode.TEMP_MARKER}full{final.suffix}"
        temp.symlink_to("/dev/full")
        return temp, open(os.devnull, "rb")

    out = tmp_path / "out.mp4"
    frames = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(25)]
    noisy = write_video(tmp_path / "noisy.mkv", frames)  # incompressible: the 32 KB buffer overflows
    monkeypatch.setattr(_encode, "_reserve_temp", temp_on_full_disk)
    with pytest.raises(OutputError, match="disk is full") as caught:
        sync(noisy, audio, out)
    assert "out.mp4" in str(caught.value) and "free some space" in str(caught.value)
    assert_nothing_written(out)
    assert not [p for p in tmp_path.iterdir() if p.is_symlink()]


class FullDisk:
    """An output container whose writes fail with ENOSPC from the ``fail_at``-th mux, or at close."""

    def __init__(self, container: av.container.OutputContainer, fail_at: int | None) -> None:
        self._container, self._fail_at, self._muxed, self._closing = container, fail_at, 0, False

    def __getattr__(self, name: str) -> object:
        return getattr(self._container, name)

    def mux(self, packets: object) -> None:
        self._muxed += 1
        if self._fail_at is not None and self._muxed >= self._fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._container.mux(packets)

    def close(self) -> None:
        if self._fail_at is None and not self._closing:  # the trailer (the MP4 index) does not fit
            self._closing = True
            raise OSError(errno.ENOSPC, "No space left on device")
        self._container.close()


@pytest.mark.parametrize("fail_at", [1, 30, None], ids=["first packet", "mid-run", "at close"])
def test_disk_full_simulated(
    tmp_path: Path, media: tuple[Path, Path], capsys, monkeypatch, fail_at: int | None
) -> None:
    video, audio = media
    real_open = av.open

    def open_output_on_full_disk(file, mode="r", **kwargs):
        container = real_open(file, mode, **kwargs)
        return FullDisk(container, fail_at) if mode == "w" else container

    monkeypatch.setattr(_encode.av, "open", open_output_on_full_disk)
    out = tmp_path / "out.mp4"
    with pytest.raises(OutputError, match="disk is full"):
        sync(video, audio, out)
    assert_nothing_written(out)
    assert_cli_fails(video, audio, out, capsys, monkeypatch, "out.mp4", "disk is full", "free some space")


# --- two runs, one name ----------------------------------------------------------------------------


def test_two_runs_writing_the_same_output_at_once(tmp_path: Path, media: tuple[Path, Path]) -> None:
    """Both finish; the name holds one whole, valid file (the last rename wins); no temp is left."""
    video, _ = media
    out = tmp_path / "same name.mp4"
    lengths = {0.6: 15, 1.0: 25}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def job(seconds: float) -> None:
        try:
            start.wait()
            sync(video, tone(seconds), out, batch_size=2, chunk_batches=1)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(s,)) for s in lengths]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    streams = output_streams(out)
    assert streams["frames"] in lengths.values()
    assert abs(streams["audio_s"] - streams["frames"] / 25) <= 0.04  # its own audio: not a mix of the two
    assert leftovers(tmp_path) == []


def test_two_processes_writing_the_same_output_at_once(tmp_path: Path, media: tuple[Path, Path]) -> None:
    video, audio = media
    out = tmp_path / "same.mp4"
    code = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[4])\n"
        "from robust import sync\n"
        "from pathlib import Path\n"
        "sync(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), batch_size=2, chunk_batches=1)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", code, str(video), str(audio), str(out), str(ROOT / "tests")]
    procs = [subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert output_streams(out)["frames"] == 25
    assert leftovers(tmp_path) == []
