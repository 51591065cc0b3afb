"""Reading a video again from the middle (ping-pong's backward segments): after one pass from the
first frame, a read that skips frames decodes from the keyframe before the first wanted frame,
and gives exactly the frames the slow read from the top gives."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from robust import make_clip

from lipsync.media import _seek
from lipsync.engine.length import sequence_frames
from lipsync.media.video import VideoWriter, iter_frames


def numbered(n: int, h: int = 64, w: int = 64) -> list[np.ndarray]:
    """Frames whose index survives H.264: two flat grey patches (8 * (i % 30) above,
    32 * (i // 30) below) on the left, noise on the right so no two frames are alike."""
    rng = np.random.default_rng(1)
    frames = []
    for i in range(n):
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        frame[: h // 2, : w // 2] = 8 * (i % 30)
        frame[h // 2 :, : w // 2] = 32 * (i // 30)
        frames.append(frame)
    return frames


def index_of(frame: np.ndarray) -> int:
    h, w = frame.shape[:2]
    low = float(np.median(frame[8 : h // 2 - 8, 4 : w // 2 - 12]))
    high = float(np.median(frame[h // 2 + 8 : -8, 4 : w // 2 - 12]))
    return round(low / 8) + 30 * round(high / 32)


@pytest.fixture
def gop20(tmp_path: Path) -> Path:
    """120 frames of H.264 with a keyframe every 20 frames."""
    path = tmp_path / "gop20.mp4"
    with VideoWriter(path, 25, x264_params="keyint=20:min-keyint=20:scenecut=0") as writer:
        for frame in numbered(120):
            writer.write(frame)
    return path


def test_first_pass_learns_the_keyframes(gop20: Path) -> None:
    assert _seek.lookup(str(gop20)) is None
    first = list(iter_frames(gop20))
    assert [index_of(f) for f in first] == list(range(120))
    timeline = _seek.lookup(str(gop20))
    assert timeline is not None and timeline.covered == 120
    assert timeline.keyframes == list(range(0, 120, 20))
    assert timeline.start_for(37) == 20 and timeline.start_for(19) is None and timeline.start_for(200) is None


@pytest.mark.parametrize(("skip", "cap", "nth"), [(37, 10, 1), (20, 0, 1), (99, 0, 1), (41, 5, 3), (119, 0, 1), (7, 4, 1)])
def test_a_later_read_jumps_and_gives_the_same_frames(gop20: Path, skip: int, cap: int, nth: int, monkeypatch: pytest.MonkeyPatch) -> None:
    everything = list(iter_frames(gop20))
    jumps: list[int] = []
    real_jump = _seek.jump

    def spy(container, stream, timeline, start, first):  # noqa: ANN001, ANN202
        jumps.append(start)
        return real_jump(container, stream, timeline, start, first)

    monkeypatch.setattr(_seek, "jump", spy)
    got = list(iter_frames(gop20, skip_first_frames=skip, frame_load_cap=cap, select_every_nth=nth))
    want = everything[skip::nth][: cap or None]
    assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))
    assert jumps == ([skip // 20 * 20] if skip >= 20 else [])  # from the keyframe before it


def test_ping_pong_over_the_jumps_is_the_exact_sequence(gop20: Path) -> None:
    def open_frames(skip: int, cap: int):  # noqa: ANN202
        return iter_frames(gop20, skip_first_frames=skip, frame_load_cap=cap)

    order = [index_of(f) for f in sequence_frames(open_frames, 300, "pingpong", segment=16)]
    expected = list(range(120)) + list(range(118, -1, -1)) + list(range(1, 62))
    assert order == expected


def test_a_jump_that_lands_elsewhere_falls_back_to_the_slow_read(gop20: Path) -> None:
    everything = list(iter_frames(gop20))
    timeline = _seek.lookup(str(gop20))
    assert timeline is not None
    timeline.rate = Fraction(50)  # a wrong clock: the frames land on other slots (Drift)
    got = list(iter_frames(gop20, skip_first_frames=45, frame_load_cap=8))
    assert all(np.array_equal(a, b) for a, b in zip(got, everything[45:53])) and len(got) == 8


def test_variable_frame_rate_files_are_never_jumped_into(tmp_path: Path) -> None:
    pts = [round(i * 1000 / 30) for i in range(30)] + [1000 + round(i * 1000 / 15) for i in range(15)]
    video = make_clip(tmp_path / "phone.mkv", numbered(45), 30, pts=pts, time_base=Fraction(1, 1000))
    list(iter_frames(video))
    assert _seek.lookup(str(video)) is None


def test_a_changed_file_forgets_its_timeline(gop20: Path) -> None:
    list(iter_frames(gop20))
    assert _seek.lookup(str(gop20)) is not None
    with VideoWriter(gop20, 25) as writer:  # rewritten: another size and time
        for frame in numbered(30):
            writer.write(frame)
    assert _seek.lookup(str(gop20)) is None
    assert [index_of(f) for f in iter_frames(gop20, skip_first_frames=25)] == list(range(25, 30))


def test_a_fresh_process_learns_the_keyframes_from_the_packets(gop20: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``index_keyframes`` (what a cluster worker calls before its frame range): the same
    timeline as a first pass, without decoding the file, and jumps that give the same frames."""
    from lipsync.media.video import index_keyframes, indexed_frame_count

    everything = list(iter_frames(gop20))
    learnt = _seek.lookup(str(gop20))
    monkeypatch.setattr(_seek, "_CACHE", type(_seek._CACHE)())  # as in a process that never read it
    assert indexed_frame_count(gop20) is None
    assert index_keyframes(gop20) and indexed_frame_count(gop20) == 120
    assert _seek.lookup(str(gop20)) == learnt
    got = list(iter_frames(gop20, skip_first_frames=61, frame_load_cap=9))
    assert all(np.array_equal(a, b) for a, b in zip(got, everything[61:70])) and len(got) == 9
    pts = [round(i * 1000 / 30) for i in range(30)] + [1000 + round(i * 1000 / 15) for i in range(15)]
    phone = make_clip(tmp_path / "phone.mkv", numbered(45), 30, pts=pts, time_base=Fraction(1, 1000))
    assert not index_keyframes(phone) and indexed_frame_count(phone) is None  # irregular: read from the start
