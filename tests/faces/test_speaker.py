"""One speaker (issue #11, part 5): the default face choice picks one person and keeps them
through size swaps, brief misses and a face that leaves and returns; the user picks the person
by index or by a point; the command line and the pipeline carry the choice. Synthetic
detections, two real faces built from the shared close-up, and the shared two-faces case."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import MEDIA, SHARED

from lipsync.cli.options import COMMAND_GROUPS, option_parents, options_from_args
from lipsync.errors import InputError
from lipsync.faces import FaceTracker, run_detection
from lipsync.faces.speaker import SpeakerLock, SpeakerParams
from lipsync.types import Detection, FaceFrame

H, W = 360, 640
LEFT = (160.0, 180.0)
RIGHT = (480.0, 180.0)


def face(centre: tuple[float, float], size: float, *, dx: float = 0.0, dy: float = 0.0) -> Detection:
    """A square face of side ``size`` around ``centre`` (shifted by dx, dy)."""
    cx, cy = centre[0] + dx, centre[1] + dy
    return Detection(cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2, 0.9)


def two_people(n: int, seed: int = 0, swap_every: int = 12, sizes: tuple[float, float] = (100.0, 104.0)
               ) -> list[list[Detection]]:
    """Two people side by side, talking (heads bobbing by a few px), of nearly the same size;
    which one is larger swaps every ``swap_every`` frames. Detector order is shuffled."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        small, large = sizes
        a, b = (large, small) if (i // swap_every) % 2 == 0 else (small, large)
        dets = [face(LEFT, a + rng.normal(0, 1), dx=rng.normal(0, 2), dy=3 * np.sin(i / 3)),
                face(RIGHT, b + rng.normal(0, 1), dx=rng.normal(0, 2), dy=3 * np.cos(i / 4))]
        rng.shuffle(dets)  # type: ignore[arg-type]
        out.append(dets)
    return out


def track(per_frame: list[list[Detection] | None], **options: object) -> list[FaceFrame]:
    tracker = FaceTracker((H, W), pads=(0, 0, 0, 0), smooth_window=1, **options)  # type: ignore[arg-type]
    out: list[FaceFrame] = []
    for dets in per_frame:
        out += tracker.push(dets)
    out += tracker.flush()
    assert len(out) == len(per_frame)
    return out


def side(f: FaceFrame) -> str | None:
    """Whose face the frame's box is: "left", "right" or None (no box)."""
    if f.box is None:
        return None
    return "left" if (f.box.left + f.box.right) / 2 < W / 2 else "right"


def test_the_default_keeps_one_person_when_their_sizes_swap() -> None:
    dets = two_people(100)
    got = [side(f) for f in track(dets)]
    assert got == ["left"] * 100  # the left face is the larger at the start
    # per-frame "largest" would hop: the input really swaps
    largest = [("left" if max(d, key=lambda x: x.area).center[0] < W / 2 else "right") for d in dets]
    assert largest.count("right") > 30
    got_steady = [side(f) for f in track(dets, smoothing="steady")]
    assert got_steady == ["left"] * 100


@pytest.mark.parametrize("growth", [1.02, 1.05, 1.10])
def test_a_few_per_cent_of_size_never_switches(growth: float) -> None:
    """The followed face shrinks by a few per cent while the other grows by as much."""
    frames = [[face(LEFT, 100.0 / growth ** (i / 10)), face(RIGHT, 100.0 * growth ** (i / 10) - 1)]
              for i in range(60)]
    assert {side(f) for f in track(frames)} == {"left"}


@pytest.mark.parametrize("missing", ["passthrough", "hold", "interpolate"])
def test_brief_misses_never_hand_the_mouth_to_the_other_person(missing: str) -> None:
    dets: list[list[Detection] | None] = list(two_people(60))
    for i in (10, 11, 12, 30, 45, 46):  # the left face is not detected in these frames
        dets[i] = [d for d in dets[i] if d.center[0] > W / 2]  # type: ignore[union-attr]
    got = track(dets, missing=missing)
    sides = [side(f) for f in got]
    assert "right" not in sides
    if missing == "passthrough":
        assert [i for i, s in enumerate(sides) if s is None] == [10, 11, 12, 30, 45, 46]
    else:
        assert sides == ["left"] * 60 and not got[11].detected and got[13].detected


def test_a_face_that_leaves_and_returns_is_the_same_person() -> None:
    """The left person walks out (not detected for 40 frames) and comes back a little lower
    and larger; the right one, larger all along, never takes the mouth."""
    dets: list[list[Detection] | None] = []
    for i in range(100):
        right = face(RIGHT, 120.0, dy=2 * np.sin(i / 5))
        if 30 <= i < 70:
            dets.append([right])
        elif i >= 70:
            dets.append([face(LEFT, 108.0, dx=-25.0, dy=20.0), right])
        else:
            dets.append([face(LEFT, 126.0), right])
    sides = [side(f) for f in track(dets)]
    assert sides[:30] == ["left"] * 30 and sides[30:70] == [None] * 40 and sides[70:] == ["left"] * 30


def test_a_returning_face_is_found_by_position_not_by_size() -> None:
    """While the followed face is away a larger stranger appears far from where it left; when it
    comes back near its place it is taken again, the stranger never."""
    dets: list[list[Detection] | None] = [[face(LEFT, 100.0), face(RIGHT, 96.0)] for _ in range(10)]
    dets += [[face(RIGHT, 96.0)] for _ in range(5)]
    dets += [[face((320.0, 80.0), 130.0), face(RIGHT, 96.0)] for _ in range(5)]  # a stranger, not near LEFT
    dets += [[face((320.0, 80.0), 130.0), face(LEFT, 98.0, dx=8), face(RIGHT, 96.0)] for _ in range(10)]
    got = track(dets)
    xs = [None if f.box is None else (f.box.left + f.box.right) / 2 for f in got]
    assert xs[:10] == [LEFT[0]] * 10
    assert xs[10:15] == [None] * 5
    assert all(x is None or abs(x - LEFT[0]) < 20 for x in xs[15:20])
    assert all(x is not None and abs(x - LEFT[0] - 8) < 2 for x in xs[20:])


def test_a_face_back_beyond_the_gate_is_taken_once_the_gate_reaches_it() -> None:
    """The followed face is missed for 4 frames and comes back 1.2 face sizes away: first it is a
    new face (its own track), then, as the gate widens, the followed person again."""
    dets: list[list[Detection] | None] = [[face(LEFT, 100.0), face(RIGHT, 100.0)] for _ in range(10)]
    dets += [[face(RIGHT, 100.0)] for _ in range(4)]
    dets += [[face(LEFT, 100.0, dx=-100.0, dy=60.0), face(RIGHT, 100.0)] for _ in range(12)]
    got = track(dets)
    xs = [None if f.box is None else (f.box.left + f.box.right) / 2 for f in got]
    assert xs[:10] == [LEFT[0]] * 10 and xs[10:14] == [None] * 4
    back = [k for k, x in enumerate(xs) if x is not None and k >= 14]
    assert back and back[0] <= 20 and all(xs[k] == LEFT[0] - 100 for k in range(back[0], 26))


def test_someone_seen_with_the_person_is_never_taken_for_them() -> None:
    """The followed person leaves for good; the other one walks over to their place."""
    dets: list[list[Detection] | None] = [[face(LEFT, 100.0), face(RIGHT, 96.0)] for _ in range(10)]
    dets += [[face((RIGHT[0] - 8.0 * k, RIGHT[1]), 96.0)] for k in range(1, 80)]
    assert [side(f) for f in track(dets)][10:] == [None] * 79


def test_one_person_alone_is_followed_across_a_cut() -> None:
    """With nobody else in view, a jump of the only face (a cut, a fast move) is still them."""
    dets = [[face(LEFT, 100.0)]] * 5 + [[face(RIGHT, 150.0)]] * 5
    assert [side(f) for f in track(dets)] == ["left"] * 5 + ["right"] * 5


def test_index_picks_from_the_left_and_keeps_that_person() -> None:
    dets = two_people(40)
    assert {side(f) for f in track(dets, choice="index", face_index=1)} == {"right"}
    assert {side(f) for f in track(dets, choice="index", face_index=0)} == {"left"}
    # the people cross: the index picks once, then the person is followed
    crossing = [[face((200.0 + 6 * i, 180.0), 100.0), face((440.0 - 6 * i, 150.0), 90.0)] for i in range(40)]
    got = track(crossing, choice="index", face_index=0)
    assert [f.box.top for f in got if f.box] == [130] * 40  # the first (lower) person all along
    # not enough faces yet: nothing until a frame shows the index-th face
    late = [[face(LEFT, 100.0)]] * 3 + two_people(5)
    assert [side(f) for f in track(late, choice="index", face_index=1)] == [None] * 3 + ["right"] * 5


def test_point_picks_the_face_there_or_the_nearest() -> None:
    dets = two_people(30)
    assert {side(f) for f in track(dets, choice="point", point=(470, 200))} == {"right"}
    assert {side(f) for f in track(dets, choice="point", point=(10, 10))} == {"left"}
    assert {side(f) for f in track(dets, choice="point", point=(620, 350))} == {"right"}


def test_closest_is_the_former_name_of_largest() -> None:
    dets = two_people(50, seed=3)
    assert [side(f) for f in track(dets, choice="closest")] == [side(f) for f in track(dets)]


def test_the_lock_starts_afresh_after_flush() -> None:
    tracker = FaceTracker((H, W), pads=(0, 0, 0, 0))
    first = tracker.push([face(LEFT, 100.0), face(RIGHT, 90.0)]) + tracker.flush()
    second = tracker.push([face(LEFT, 90.0), face(RIGHT, 100.0)]) + tracker.flush()
    assert [side(f) for f in first + second] == ["left", "right"]


def test_state_stays_small_with_many_passers_by() -> None:
    lock = SpeakerLock()
    rng = np.random.default_rng(5)
    for i in range(2000):
        strangers = [face((float(x), 100.0), 40.0) for x in rng.uniform(0, W, 3)]
        assert lock.pick(i, [face(LEFT, 100.0), *strangers]) == 0
    assert len(lock._tracks) <= 1 + 3 * SpeakerParams().forget


def test_bad_speaker_settings_are_refused() -> None:
    with pytest.raises(InputError, match="largest, index, closest, point"):
        SpeakerLock("biggest")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="max_scale"):
        SpeakerParams(max_scale=0.9).check()
    from lipsync.options import LipSyncOptions

    with pytest.raises(InputError, match="face_point"):
        LipSyncOptions.of(face_choice="point", face_point=(-3, 10)).resolved()


def test_the_command_line_carries_the_choice() -> None:
    import argparse

    parser = argparse.ArgumentParser(parents=option_parents("run"))
    args = parser.parse_args(["--face", "point", "--face-point", "470", "200"])
    opts = options_from_args(args, COMMAND_GROUPS["run"])
    assert (opts.faces.face_choice, opts.faces.face_point) == ("point", (470, 200))
    with pytest.raises(SystemExit):
        parser.parse_args(["--face-point", "470"])


# --- through the pipeline --------------------------------------------------------------------


class _SwappingDetector:
    """Two faces whose sizes swap every 6 frames (the detector sees the same frame every time)."""

    name = "swapping"

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, frame: np.ndarray) -> list[Detection]:
        i = self.calls
        self.calls += 1
        a, b = (84.0, 80.0) if (i // 6) % 2 == 0 else (80.0, 84.0)
        return [face((80.0, 90.0), a), face((240.0, 90.0), b)]


@pytest.mark.parametrize(("settings", "changed_side"), [({}, "left"), ({"face_choice": "index", "face_index": 1}, "right"),
                                                        ({"face_choice": "point", "face_point": (250, 80)}, "right")])
def test_the_pipeline_changes_one_person_only(tmp_path: Path, settings: dict, changed_side: str) -> None:
    from lipsync.engine.lipsync import LipSyncOptions, lipsync_video
    from lipsync.media.video import VideoWriter, iter_frames
    from lipsync.models.wav2lip.generator import Wav2LipGenerator
    from lipsync.types import Waveform

    class Grey(Wav2LipGenerator):
        name = "grey"

        def __call__(self, mel: np.ndarray, faces: np.ndarray) -> np.ndarray:
            return np.full_like(faces[:, 3:6], 0.5)

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 60, (180, 320, 3), dtype=np.uint8) for _ in range(24)]
    video = tmp_path / "two.mkv"
    with VideoWriter(video, Fraction(25), lossless=True) as writer:
        for f in frames:
            writer.write(f)
    out = tmp_path / "out.mkv"
    silence = Waveform(np.zeros((1, 24 * 640), np.float32), 16000)
    options = LipSyncOptions.of(lossless=True, **settings)
    lipsync_video(video, silence, out, Grey(), options, detector=_SwappingDetector())
    for got, original in zip(iter_frames(out), frames):
        changed = np.any(got != original, axis=2)
        left, right = changed[:, :160].any(), changed[:, 160:].any()
        assert (left, right) == ((True, False) if changed_side == "left" else (False, True))


# --- real faces ------------------------------------------------------------------------------


def _yuface():
    pytest.importorskip("yuface")
    from lipsync.faces import YuFaceDetector

    return YuFaceDetector()


def _two_real_faces(n: int) -> list[np.ndarray]:
    """Two copies of the close-up face side by side, of nearly equal size (the larger swaps
    every 6 frames, ±3 %), nodding out of step; the left one is absent in frames 8-10."""
    from lipsync.media.video import iter_frames

    path = MEDIA / "astronaut_closeup_5s_silent.mp4"
    if not path.is_file():
        pytest.skip(f"shared media missing: {path}")
    src = next(iter(iter_frames(path, frame_load_cap=1)))
    crop = src[80:420, 110:400]  # the face with some margin
    frames = []
    for i in range(n):
        canvas = np.full((300, 640, 3), 90, np.uint8)
        big, small = (1.03, 1.0) if (i // 6) % 2 == 0 else (1.0, 1.03)
        for k, (x0, scale) in enumerate(((30, big), (340, small))):
            if k == 0 and 8 <= i <= 10:
                continue  # the left person turned away / left
            s = 0.75 * scale
            piece = cv2.resize(crop, (int(crop.shape[1] * s), int(crop.shape[0] * s)), interpolation=cv2.INTER_AREA)
            y0 = 20 + round(4 * np.sin(i / 2 + k))
            ph, pw = min(piece.shape[0], 300 - y0), min(piece.shape[1], 640 - x0)
            canvas[y0 : y0 + ph, x0 : x0 + pw] = piece[:ph, :pw]
        frames.append(canvas)
    return frames


def test_two_real_faces_keep_one_person() -> None:
    detector = _yuface()
    frames = _two_real_faces(16)
    tracker = FaceTracker((300, 640))  # the pipeline's pads, missing=passthrough
    got = [found for _, found in run_detection(frames, detector, tracker)]
    sides = [None if f.box is None else ("left" if (f.box.left + f.box.right) / 2 < 320 else "right") for f in got]
    assert sides[:8] == ["left"] * 8 and sides[8:11] == [None] * 3 and sides[11:] == ["left"] * 5
    point = FaceTracker((300, 640), choice="point", point=(500, 150))
    sides = {(f.box.left + f.box.right) / 2 > 320 for _, f in run_detection(frames, detector, point) if f.box}
    assert sides == {True}


def test_the_shared_two_faces_case_keeps_one_person() -> None:
    """cases/two_faces_similar_size: with the default choice one person is re-synced in every frame."""
    from lipsync.media.video import iter_frames

    path = SHARED / "cases" / "two_faces_similar_size" / "two_faces.mp4"
    if not path.is_file():
        pytest.skip(f"shared case missing: {path}")
    detector = _yuface()
    frames = list(iter_frames(path, frame_load_cap=30))  # the sizes swap at frames 12 and 24
    width = frames[0].shape[1]
    tracker = FaceTracker(frames[0].shape[:2], smoothing="steady")
    centres = [(f.box.left + f.box.right) / 2 for _, f in run_detection(frames, detector, tracker) if f.box]
    assert len(centres) == len(frames) == 30
    assert len({c < width / 2 for c in centres}) == 1
