"""Quality of the default output against the reference, measured in one run so the figures compare.

    python bench/quality/run_quality.py [--frames N] [--checkpoint PATH] [--no-sweep]

On the shared real-face clips (``$LIPSYNC_SHARED/media``, default ../shared) and two clips made
from them here, it prints:

1. steady faces: the face box tracked by the reference smoothing and by ours from the very same
   yuface detections, on a still head (the first frame of each clip repeated with sensor noise,
   sigma 2 levels; close-up face ~200 px, full ~95 px): jitter = std of the frame-to-frame step of
   the box centre (and of the centre itself); on the two moving clips, whose true motion is
   measured by image registration (OpenCV ECC, affine): RMS error of the centre and the std of
   its frame-to-frame step; on a fast head turn (the close-up frame shifted sideways at 15 px a
   frame, out and back, with pauses): |error| while it moves, its maximum, and its sign along the
   motion (+ ahead of the face, - behind). The steady rows also show the tracker given only
   every 2nd / 3rd frame's detections (``detect_every``; the frames between are interpolated),
   what a cheaper detection would cost. Then a small sweep of the steady parameters.
2. compositing on both real clips, with the random-weight checkpoint (the geometry does not need
   trained weights) and with an "identity" network (returns its input face, i.e. a perfect
   network: what is left is what the paste itself does): PSNR of the upper face (the box rows
   above the mouth mask) and of the background (outside the box) against the input frames, for
   the default (mouth mask, steady boxes) and the reference mode (whole-box paste, reference
   boxes); the seam: mean gradient magnitude on the mask border (2 px either side of its
   half-way line; for the reference, of the box edge) over the mean gradient magnitude of the
   untouched image around it (a ring outside everything that changed) — at most 1 means no edge
   stands out; the colour cast at the border (mean |out - in| of the per-channel means on the
   inner side of the border line, grey levels). A third network, the identity with a warm
   colour cast, shows what the colour options (lab match, seamless) remove.
3. resampler: the real face boxes are shrunk to 96x96 as the network sees them and grown back
   to the box with each resampler; PSNR of the lower face against the original, and sharpness
   (mean gradient magnitude relative to the original's).

Frames are compared in memory, before encoding: this measures the compositor, not the codec.
Targets (issue #5) are checked at the end. Runtime: ~3 minutes on 2 CPU cores, mostly detection.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from lipsync.media.audio import load_audio, to_model_rate  # noqa: E402
from lipsync.models.wav2lip.mel import mel_windows, melspectrogram  # noqa: E402
from lipsync.composite import Blend, ColorMatch, mouth_mask, paste_mouth, paste_reference  # noqa: E402
from lipsync.faces import RegionDetector, create_detector  # noqa: E402
from lipsync.faces.smooth import Smoothing, SteadyParams  # noqa: E402
from lipsync.faces.track import FaceTracker  # noqa: E402
from lipsync.models.wav2lip.preprocess import crop_faces, predict, to_uint8_reference  # noqa: E402
from lipsync.types import Box, Detection, FaceFrame, Frame  # noqa: E402
from lipsync.engine.lipsync import LipSyncOptions  # noqa: E402
from lipsync.media.video import iter_frames  # noqa: E402
from lipsync.models.wav2lip.generator import Wav2LipGenerator

SHARED = Path(os.environ.get("LIPSYNC_SHARED", ROOT.parent / "shared"))
MEDIA = SHARED / "media"
CHECKPOINT = SHARED / "fixtures" / "wav2lip_reference" / "random_wav2lip.pth"
CLIPS = {"closeup": "astronaut_closeup_5s_silent.mp4", "full": "astronaut_full_5s_silent.mp4"}
FPS = 25
TURN_SPEED = 15.0
SENSOR_NOISE = 2.0
PADS = (0, 10, 0, 0)

Detections = list[list[Detection]]
DEFAULTS = LipSyncOptions()
DEFAULT_ROW = f"steady (default: regions, every {DEFAULTS.faces.detect_every})"


# --- clips -----------------------------------------------------------------------------------


def noisy(frame: Frame, rng: np.random.Generator) -> Frame:
    return np.clip(frame + rng.normal(0.0, SENSOR_NOISE, frame.shape), 0, 255).astype(np.uint8)


def static_clip(first: Frame, n: int) -> list[Frame]:
    """A head that does not move: one frame, n times, each with fresh sensor noise."""
    rng = np.random.default_rng(0)
    return [noisy(first, rng) for _ in range(n)]


def turn_offsets(speed: float = TURN_SPEED) -> np.ndarray:
    """Horizontal shift per frame: still 8, out 10 frames at ``speed``, still 8, back 10, still 8."""
    out = [0.0] * 8
    x = 0.0
    for direction in (-1.0, 1.0):
        for _ in range(10):
            x += direction * speed
            out.append(x)
        out += [x] * 8
    return np.array(out)


def turn_clip(first: Frame, offsets: np.ndarray) -> list[Frame]:
    rng = np.random.default_rng(1)
    h, w = first.shape[:2]
    frames = []
    for dx in offsets:
        shift = np.float32([[1, 0, dx], [0, 1, 0]])
        moved = cv2.warpAffine(first, shift, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        frames.append(noisy(moved, rng))
    return frames


# --- tracking --------------------------------------------------------------------------------


def detect_all(frames: Sequence[Frame]) -> Detections:
    detector = create_detector("yuface")
    return [detector.detect(f) for f in frames]


def detect_regions(frames: Sequence[Frame]) -> Detections:
    """The pipeline's detection (``RegionDetector``'s defaults): the whole frame every
    ``FULL_FRAME_EVERY``-th frame, the face's region every third frame in between, the frames
    between those carried by the picture's shift."""
    detector = RegionDetector(create_detector("yuface"))
    return [detector.detect(f) for f in frames]


def track(
    dets: Detections, size: tuple[int, int], smoothing: Smoothing, steady: SteadyParams | None = None, every: int = 1
) -> list[FaceFrame]:
    """Boxes from the tracker; with ``every`` > 1 only every ``every``-th frame's detections are
    shown to it (the pipeline's ``detect_every``: the frames between are interpolated)."""
    tracker = FaceTracker(size, pads=PADS, smoothing=smoothing, steady=steady, missing="hold")
    out: list[FaceFrame] = []
    for i, d in enumerate(dets):
        out += tracker.push(d if i % every == 0 else None)
    return out + tracker.flush()


def centres(faces: Sequence[FaceFrame]) -> np.ndarray:
    boxes = [f.box for f in faces]
    assert all(b is not None for b in boxes), "a frame lost its face"
    return np.array([[(b.left + b.right) / 2.0, (b.top + b.bottom) / 2.0] for b in boxes if b is not None])


def raw_centres(dets: Detections) -> np.ndarray:
    best = [max(d, key=lambda x: x.area) for d in dets]
    # the tracker pads the bottom by 10 px: compare like with like
    return np.array([[(b.x1 + b.x2) / 2.0, (b.y1 + b.y2 + PADS[1]) / 2.0] for b in best])


def true_motion(frames: Sequence[Frame]) -> np.ndarray:
    """(N, 2, 3) affine maps from frame 0 to each frame, by image registration (OpenCV's ECC
    on the whole frame): where a point of frame 0 really is in frame i."""
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in frames]
    warp = np.eye(2, 3, dtype=np.float32)
    warps = [warp.copy()]
    for g in grey[1:]:
        _, warp = cv2.findTransformECC(grey[0], g, warp.copy(), cv2.MOTION_AFFINE, criteria, None, 5)
        warps.append(warp.copy())
    return np.array(warps, dtype=np.float64)


def true_centres(warps: np.ndarray, detected: np.ndarray) -> np.ndarray:
    """Where the face centre really is in each frame: the frame-0 point that the moving frames'
    detections agree on best (least squares), carried along by the true motion."""
    a, b = warps[:, :, :2], warps[:, :, 2]
    c0 = np.linalg.lstsq(a.reshape(-1, 2), (detected - b).reshape(-1), rcond=None)[0]
    return np.einsum("nij,j->ni", a, c0) + b


@dataclass
class Clip:
    """Detections of one tracking clip and where the face really is in each frame."""

    dets: Detections
    region_dets: Detections | None = None
    """The pipeline's detections (``RegionDetector``), for the default rows."""
    truth: np.ndarray | None = None
    velocity: np.ndarray | None = None
    """Known horizontal speed per frame (the synthetic turn), for the signed lag."""


@dataclass
class TrackFigures:
    still_step: float
    still_centre: float
    small_still_step: float
    moving_rms: float
    moving_step: float
    small_moving_rms: float
    turn_mean: float
    turn_max: float
    turn_lead: float


def _error(faces: list[FaceFrame], truth: np.ndarray) -> np.ndarray:
    return centres(faces) - truth


def _step_std(c: np.ndarray) -> float:
    return float(np.hypot(*np.diff(c, axis=0).std(axis=0)))


def track_figures(
    clips: dict[str, Clip], size: tuple[int, int], smoothing: Smoothing, params: SteadyParams | None = None, every: int = 1
) -> TrackFigures:
    run = {name: track(clip.dets, size, smoothing, params, every) for name, clip in clips.items()}
    still, small_still = centres(run["still"]), centres(run["still_small"])
    moving = _error(run["moving"], clips["moving"].truth)  # type: ignore[arg-type]
    small_moving = _error(run["moving_small"], clips["moving_small"].truth)  # type: ignore[arg-type]
    turn = _error(run["turn"], clips["turn"].truth)[:, 0]  # type: ignore[arg-type]
    velocity = clips["turn"].velocity
    assert velocity is not None
    on_the_move = velocity != 0
    return TrackFigures(
        still_step=_step_std(still),
        still_centre=float(np.hypot(*still.std(axis=0))),
        small_still_step=_step_std(small_still),
        moving_rms=float(np.sqrt((moving**2).sum(axis=1).mean())),
        moving_step=_step_std(moving),
        small_moving_rms=float(np.sqrt((small_moving**2).sum(axis=1).mean())),
        turn_mean=float(np.abs(turn[on_the_move]).mean()),
        turn_max=float(np.abs(turn).max()),
        turn_lead=float((turn[on_the_move] * np.sign(velocity[on_the_move])).mean()),
    )


def raw_figures(clips: dict[str, Clip]) -> TrackFigures:
    """The same figures for the detections themselves (padded like the tracker, unsmoothed)."""
    c = {name: raw_centres(clip.dets) for name, clip in clips.items()}
    moving = c["moving"] - clips["moving"].truth
    small = c["moving_small"] - clips["moving_small"].truth
    turn = (c["turn"] - clips["turn"].truth)[:, 0]  # type: ignore[index]
    velocity = clips["turn"].velocity
    assert velocity is not None
    on = velocity != 0
    return TrackFigures(
        still_step=_step_std(c["still"]),
        still_centre=float(np.hypot(*c["still"].std(axis=0))),
        small_still_step=_step_std(c["still_small"]),
        moving_rms=float(np.sqrt((moving**2).sum(axis=1).mean())),
        moving_step=_step_std(moving),
        small_moving_rms=float(np.sqrt((small**2).sum(axis=1).mean())),
        turn_mean=float(np.abs(turn[on]).mean()),
        turn_max=float(np.abs(turn).max()),
        turn_lead=float((turn[on] * np.sign(velocity[on])).mean()),
    )


TRACK_HEADER = (
    f"{'':34s} |  still head (200 px face)   | still, 95 px |   moving (close-up)    | moving 95 px | "
    f"fast turn, {TURN_SPEED:g} px/frame"
)
TRACK_COLUMNS = (
    f"{'':34s} | step std   centre std      | step std     | RMS error  error step  | RMS error    | "
    "mean |err|  max   signed (+ ahead)"
)


def track_row(label: str, f: TrackFigures) -> str:
    return (
        f"{label:34s} | {f.still_step:6.3f} px  {f.still_centre:6.3f} px       | {f.small_still_step:6.3f} px    | "
        f"{f.moving_rms:6.2f} px  {f.moving_step:6.3f} px   | {f.small_moving_rms:6.2f} px    | "
        f"{f.turn_mean:6.2f} px {f.turn_max:6.2f} {f.turn_lead:+7.2f} px"
    )


# --- compositing -----------------------------------------------------------------------------


class Identity(Wav2LipGenerator):
    """A perfect network: gives back the unmasked face it was shown (BGR), optionally with a
    colour cast (per-channel gain, then an offset), like a network that shifts the skin tone."""

    name = "identity"

    def __init__(self, gain: tuple[float, float, float] = (1.0, 1.0, 1.0), offset: float = 0.0) -> None:
        self.gain = np.array(gain, np.float32)[None, :, None, None]
        self.offset = offset

    def __call__(self, mel: np.ndarray, faces: np.ndarray) -> np.ndarray:
        return np.clip(faces[:, 3:6] * self.gain + self.offset, 0.0, 1.0).astype(np.float32)


TINT = Identity(gain=(0.9, 1.0, 1.12), offset=0.03)
"""B x0.9, R x1.12, +3 %: a visible warm cast."""


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0:
        return math.nan
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def luma_gradient(img: np.ndarray) -> np.ndarray:
    """Gradient magnitude of the luma in grey levels per pixel (Sobel / 8)."""
    y = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return np.sqrt(gx * gx + gy * gy)


def distance_to(region: np.ndarray) -> np.ndarray:
    """Per pixel, the distance (px) to the nearest pixel of ``region`` (0 inside it)."""
    return cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 3)


def seam_regions(weights: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """(border, around): the pixels within 2 px of the half-way line of ``weights`` (H, W) on
    either side; and the untouched pixels 3 px to max(6, 0.1 x box width) from anything changed."""
    half = weights >= 0.5
    border = (distance_to(half) <= 2.0) & (distance_to(~half) <= 2.0)
    touched = weights > 0
    far = distance_to(touched)
    around = ~touched & (far >= 3.0) & (far <= max(6.0, 0.1 * box.width))
    return border, around


@dataclass
class CompositeRun:
    upper: list[float]
    background: list[float]
    seam: list[float]
    around: list[float]
    colour_step: list[float]

    @staticmethod
    def empty() -> CompositeRun:
        return CompositeRun([], [], [], [], [])


def regions(frame_shape: tuple[int, ...], face: FaceFrame) -> tuple[np.ndarray, np.ndarray]:
    """(upper face, background) boolean masks: box rows above the mouth mask; outside the box."""
    box = face.box
    assert box is not None
    h, w = frame_shape[:2]
    marks = None if face.landmarks is None else face.landmarks - np.array([box.left, box.top], np.float32)
    local = mouth_mask(box.height, box.width, marks)
    rows = np.flatnonzero(local.max(axis=1) > 0)
    first = int(rows[0]) if len(rows) else box.height
    upper = np.zeros((h, w), bool)
    upper[box.top : box.top + first, box.left : box.right] = True
    background = np.ones((h, w), bool)
    background[box.top : box.bottom, box.left : box.right] = False
    return upper, background


def _near(box: Box, shape: tuple[int, ...], margin: int) -> tuple[slice, slice]:
    h, w = shape[:2]
    return (slice(max(0, box.top - margin), min(h, box.bottom + margin)),
            slice(max(0, box.left - margin), min(w, box.right + margin)))


def composite_run(
    frames: Sequence[Frame], faces: Sequence[FaceFrame], pred: np.ndarray, mode: str, *,
    color_match: ColorMatch = "off", blend: Blend = "feather",
) -> CompositeRun:
    run = CompositeRun.empty()
    pred_u8 = to_uint8_reference(pred)
    for i, (frame, face) in enumerate(zip(frames, faces)):
        box = face.box
        assert box is not None
        weights = np.zeros(frame.shape[:2], np.float32)
        if mode == "reference":
            out = paste_reference(frame, pred_u8[i], box)
            weights[box.top : box.bottom, box.left : box.right] = 1.0
        else:
            out, local = paste_mouth(frame, pred[i], box, face.landmarks, color_match=color_match, blend=blend)
            weights[box.top : box.bottom, box.left : box.right] = local
        upper, background = regions(frame.shape, face)
        run.upper.append(psnr(out[upper], frame[upper]))
        run.background.append(psnr(out[background], frame[background]))
        # the seam figures only look near the box: work on that part of the frame (faster)
        roi = _near(box, frame.shape, margin=int(max(6.0, 0.1 * box.width)) + 4)
        border, around = seam_regions(weights[roi], box)
        grad = luma_gradient(out[roi])
        run.seam.append(float(grad[border].mean()))
        run.around.append(float(grad[around].mean()))
        inner = border & (weights[roi] >= 0.5)
        cast = out[roi][inner].astype(np.float32).mean(axis=0) - frame[roi][inner].astype(np.float32).mean(axis=0)
        run.colour_step.append(float(np.abs(cast).mean()))
    return run


def mean_db(values: Sequence[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "inf (identical)"
    if len(finite) < len(values):
        return f"{np.mean(finite):.2f} dB ({len(values) - len(finite)} frames identical)"
    return f"{np.mean(finite):.2f} dB"


def min_db(values: Sequence[float]) -> float:
    return float(min(values)) if values else math.nan


# --- the whole mouth (issue #11) ---------------------------------------------------------------


CORE_ROWS, CORE_COLUMNS = (0.6, 0.95), (0.25, 0.75)
"""The central mouth region the issue measures: rows 0.6-0.95 of the box, the central half."""


def core_region(box: Box) -> tuple[slice, slice]:
    """Frame pixels of the central mouth region of ``box`` (every row/column it touches)."""
    r0, r1 = math.floor(CORE_ROWS[0] * box.height), math.ceil(CORE_ROWS[1] * box.height)
    c0, c1 = math.floor(CORE_COLUMNS[0] * box.width), math.ceil(CORE_COLUMNS[1] * box.width)
    return slice(box.top + r0, box.top + r1), slice(box.left + c0, box.left + c1)


@dataclass
class MouthRun:
    coverage_marks: list[float]
    """Per frame: the least mask weight over the central mouth region, landmark mask."""
    coverage_box: list[float]
    """The same with a box-only mask (no landmarks)."""
    core_vs_reference: list[float]
    """Per frame: correlation of the default output's mouth core with the reference paste's, on
    the same frame, box and generated face."""
    core_vs_input: list[float]
    """Per frame: correlation of the default output's mouth core with the input frame's (how much
    of the original mouth still shows; a ghost raises it)."""


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


def mouth_run(frames: Sequence[Frame], faces: Sequence[FaceFrame], pred: np.ndarray) -> MouthRun:
    """The mask-coverage and mouth-core figures of the default mode on ``frames``."""
    run = MouthRun([], [], [], [])
    pred_u8 = to_uint8_reference(pred)
    for i, (frame, face) in enumerate(zip(frames, faces)):
        box = face.box
        assert box is not None
        local = None if face.landmarks is None else face.landmarks - np.array([box.left, box.top], np.float32)
        rows, cols = core_region(box)
        inner = (slice(rows.start - box.top, rows.stop - box.top), slice(cols.start - box.left, cols.stop - box.left))
        run.coverage_marks.append(float(mouth_mask(box.height, box.width, local)[inner].min()))
        run.coverage_box.append(float(mouth_mask(box.height, box.width, None)[inner].min()))
        ours, _ = paste_mouth(frame, pred[i], box, face.landmarks)
        reference = paste_reference(frame, pred_u8[i], box)
        run.core_vs_reference.append(_correlation(ours[rows, cols], reference[rows, cols]))
        run.core_vs_input.append(_correlation(ours[rows, cols], frame[rows, cols]))
    return run


def print_mouth(mouth: dict[tuple[str, str], MouthRun]) -> None:
    print("\n# The whole mouth: central mouth region = rows 0.6-0.95 of the box x its central half")
    print("mask coverage: least mask weight in the region (landmark / box-only mask); mouth core: correlation of")
    print("the default output there with the reference paste on the same frames and boxes (and with the input)")
    print(f"{'clip':8s} {'network':17s} | {'coverage, landmarks':>20s} | {'coverage, box only':>18s} | "
          f"{'core vs reference: mean / worst':>31s} | core vs input")
    for (clip, net_name), m in mouth.items():
        print(f"{clip:8s} {net_name:17s} | {min(m.coverage_marks):20.3f} | {min(m.coverage_box):18.3f} | "
              f"{np.mean(m.core_vs_reference):14.3f} / {min(m.core_vs_reference):14.3f} | "
              f"{np.mean(m.core_vs_input):.3f}")


TWO_FACES = SHARED / "cases" / "two_faces_similar_size" / "two_faces.mp4"


@dataclass
class SpeakerFigures:
    frames: int
    switches_largest: int
    """Changes of person from frame to frame when the largest face of each frame is taken."""
    switches_ours: int
    """The same for the default choice (the person picked at the start, followed)."""
    without_face: int
    """Frames where the default choice gave no face."""


def _switches(sides: Sequence[bool]) -> int:
    return int(sum(a != b for a, b in zip(sides, sides[1:])))


def speaker_section() -> SpeakerFigures | None:
    """Two people of nearly equal size whose sizes swap every 12 frames (the shared case)."""
    print("\n# One speaker: cases/two_faces_similar_size (two faces, the larger swaps every 12 frames)")
    if not TWO_FACES.is_file():
        print(f"  (skipped: {TWO_FACES} is absent)")
        return None
    frames = list(iter_frames(TWO_FACES))
    dets = timed("detect two faces", lambda: detect_all(frames))
    width = frames[0].shape[1]
    largest = [max(d, key=lambda x: x.area).center[0] < width / 2 for d in dets if d]
    tracker = FaceTracker(frames[0].shape[:2], pads=PADS, smoothing="steady", choice=DEFAULTS.faces.face_choice)
    pipeline = timed("detect two faces as the pipeline does", lambda: detect_regions(frames))
    faces = [f for d in pipeline for f in tracker.push(d)] + tracker.flush()
    ours = [(f.box.left + f.box.right) / 2 < width / 2 for f in faces if f.box is not None]
    figures = SpeakerFigures(len(frames), _switches(largest), _switches(ours), len(faces) - len(ours))
    print(f"person switches: the largest face of each frame {figures.switches_largest}; the default choice "
          f"{figures.switches_ours} ({figures.without_face} of {figures.frames} frames without a face)")
    return figures


def speaker_checks(figures: SpeakerFigures | None) -> list[tuple[str, bool]]:
    if figures is None:
        return []
    label = (f"two faces of similar size: the default choice keeps one person in every frame ({figures.switches_ours} "
             f"switches, {figures.without_face} frames without a face; per-frame largest: {figures.switches_largest})")
    return [(label, figures.switches_ours == 0 and figures.without_face == 0)]


# --- resampler -------------------------------------------------------------------------------


def resampler_figures(frames: Sequence[Frame], faces: Sequence[FaceFrame]) -> dict[str, tuple[float, float]]:
    """Per resampler: (PSNR of the lower half of the box, sharpness ratio) for 96 -> box."""
    interp = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}
    scores: dict[str, list[tuple[float, float]]] = {k: [] for k in interp}
    for frame, face in zip(frames, faces):
        box = face.box
        assert box is not None
        crop = frame[box.top : box.bottom, box.left : box.right]
        small = cv2.resize(crop, (96, 96)).astype(np.float32)  # what the network sees
        lower = slice(box.height // 2, box.height)
        sharp_ref = float(luma_gradient(crop[lower]).mean())
        for name, flag in interp.items():
            grown = cv2.resize(small, (box.width, box.height), interpolation=flag)
            up = np.clip(np.rint(grown), 0, 255).astype(np.uint8)
            scores[name].append((psnr(up[lower], crop[lower]), float(luma_gradient(up[lower]).mean()) / sharp_ref))
    return {k: (float(np.mean([s[0] for s in v])), float(np.mean([s[1] for s in v]))) for k, v in scores.items()}


# --- main ------------------------------------------------------------------------------------


T = TypeVar("T")


def timed(label: str, fn: Callable[[], T]) -> T:
    t0 = time.perf_counter()
    value = fn()
    print(f"  ({label}: {time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return value


SWEEP = [
    ("default", SteadyParams()),
    ("hysteresis 0.3", SteadyParams(hysteresis=0.3)),
    ("hysteresis 0", SteadyParams(hysteresis=0.0)),
    ("past 4", SteadyParams(past=4)),
    ("lookahead 2", SteadyParams(lookahead=2)),
    ("noise floor 0.5 px", SteadyParams(noise_floor=0.5)),
    ("follow from 2 to 4 sigma", SteadyParams(follow_from=2.0, follow_full=4.0)),
    ("never follow", SteadyParams(follow_from=1e6, follow_full=2e6)),
]
SWEEP_NOTE = (
    "each line changes one parameter of the default: past 6, lookahead 4, follow 3-6 sigma, noise floor 1 px, "
    "hysteresis 0.5 px"
)


def tracking_clips(clips: dict[str, list[Frame]], n: int) -> dict[str, Clip]:
    """Detections (and the true face positions) of the five tracking clips."""
    first = clips["closeup"][0]
    offsets = turn_offsets()
    out = {
        "still": Clip(timed("detect still", lambda: detect_all(static_clip(first, n)))),
        "still_small": Clip(timed("detect still small", lambda: detect_all(static_clip(clips["full"][0], n)))),
        "moving": Clip(timed("detect close-up", lambda: detect_all(clips["closeup"]))),
        "moving_small": Clip(timed("detect full", lambda: detect_all(clips["full"]))),
        "turn": Clip(timed("detect turn", lambda: detect_all(turn_clip(first, offsets)))),
    }
    regional = {
        "still": static_clip(first, n), "still_small": static_clip(clips["full"][0], n),
        "moving": clips["closeup"], "moving_small": clips["full"], "turn": turn_clip(first, offsets),
    }
    for name, frames in regional.items():
        out[name].region_dets = timed(f"detect {name} in regions", lambda frames=frames: detect_regions(frames))  # type: ignore[misc]
    for name, clip in (("moving", "closeup"), ("moving_small", "full")):
        warps = timed(f"register {clip}", lambda clip=clip: true_motion(clips[clip]))  # type: ignore[misc]
        out[name].truth = true_centres(warps, raw_centres(out[name].dets))
    start = raw_centres(out["turn"].dets[:8]).mean(axis=0)
    out["turn"].truth = np.stack([start[0] + offsets, np.full_like(offsets, start[1])], axis=1)
    out["turn"].velocity = np.diff(offsets, prepend=offsets[0])
    return out


def steady_section(tracking: dict[str, Clip], size: tuple[int, int], sweep: bool) -> dict[str, TrackFigures]:
    print("# Steady faces: face box centre (yuface detections, bottom pad 10 px), px")
    print("still: std of the frame-to-frame step and of the centre; moving: error against the true motion (image")
    print("registration) and std of its frame-to-frame step; fast turn: error while moving, + = box ahead of the face")
    print(TRACK_HEADER)
    print(TRACK_COLUMNS)
    figures = {
        "raw detections": raw_figures(tracking),
        "reference (5-frame mean)": track_figures(tracking, size, "reference"),
        "steady, every frame": track_figures(tracking, size, "steady"),
        "steady, every 2nd frame": track_figures(tracking, size, "steady", every=2),
        "steady, every 3rd frame": track_figures(tracking, size, "steady", every=3),
    }
    regional = {name: Clip(c.region_dets or c.dets, truth=c.truth, velocity=c.velocity) for name, c in tracking.items()}
    figures[DEFAULT_ROW] = track_figures(regional, size, "steady", every=DEFAULTS.faces.detect_every)
    for name, f in figures.items():
        print(track_row(name, f))
    if sweep:
        print(f"\nsteady parameter sweep (same detections; {SWEEP_NOTE}):")
        for label, params in SWEEP:
            print(track_row("  " + label, track_figures(tracking, size, "steady", params)))
    return figures


NETWORKS = ("random weights", "identity network", "tinted identity")


def composite_section(
    clips: dict[str, list[Frame]], tracking: dict[str, Clip], checkpoint: str
) -> tuple[dict[tuple[str, str, str], CompositeRun], dict[tuple[str, str], MouthRun]]:
    from lipsync.models.wav2lip.generator import load_generator

    print("\n# Compositing (frames in memory, before encoding)")
    nets = {
        "random weights": load_generator(checkpoint, "cpu"), "identity network": Identity(), "tinted identity": TINT,
    }
    mel = melspectrogram(to_model_rate(load_audio(MEDIA / "speech_espeak_16k_5s.wav")))
    dets = {"closeup": tracking["moving"].dets, "full": tracking["moving_small"].dets}
    region_dets = {"closeup": tracking["moving"].region_dets, "full": tracking["moving_small"].region_dets}
    results: dict[tuple[str, str, str], CompositeRun] = {}
    mouth: dict[tuple[str, str], MouthRun] = {}
    for clip, frames in clips.items():
        windows = mel_windows(mel, FPS, len(frames))
        tracks = {
            "steady": track(region_dets[clip] or dets[clip], frames[0].shape[:2], "steady", every=DEFAULTS.faces.detect_every),
            "reference": track(dets[clip], frames[0].shape[:2], "reference"),
        }
        crops = {s: crop_faces(frames, [f.box for f in t]) for s, t in tracks.items()}  # type: ignore[misc]
        for net_name, net in nets.items():
            ours = predict(net, windows, crops["steady"], 8)
            ref = predict(net, windows, crops["reference"], 8)
            results[(clip, net_name, "default (mouth)")] = composite_run(frames, tracks["steady"], ours, "mouth")
            if net_name != "tinted identity":
                mouth[(clip, net_name)] = mouth_run(frames, tracks["steady"], ours)
            results[(clip, net_name, "reference")] = composite_run(frames, tracks["reference"], ref, "reference")
            if net_name != "identity network":
                results[(clip, net_name, "mouth + lab colour")] = composite_run(
                    frames, tracks["steady"], ours, "mouth", color_match="lab")
                results[(clip, net_name, "mouth + seamless")] = composite_run(
                    frames, tracks["steady"], ours, "mouth", blend="seamless")
    print(f"{'clip':8s} {'network':17s} {'mode':20s} | {'upper face PSNR':>26s} | {'background PSNR':>16s} | "
          f"seam grad / around = ratio | colour cast at border")
    for (clip, net_name, mode), r in results.items():
        seam, around = float(np.mean(r.seam)), float(np.mean(r.around))
        print(f"{clip:8s} {net_name:17s} {mode:20s} | {mean_db(r.upper):>26s} | {mean_db(r.background):>16s} | "
              f"{seam:5.2f} / {around:5.2f} = {seam / around:4.2f}      | {np.mean(r.colour_step):5.1f} levels")
    print_mouth(mouth)
    return results, mouth


Scores = dict[str, tuple[float, float]]


def resampler_section(clips: dict[str, list[Frame]], tracking: dict[str, Clip]) -> dict[str, Scores]:
    print("\n# Resampler: the face box shrunk to 96x96 (as the network sees it) and grown back; lower half of the box")
    rows = {}
    for clip, name in (("closeup", "moving"), ("full", "moving_small")):
        faces = track(tracking[name].dets, clips[clip][0].shape[:2], "steady", every=DEFAULTS.faces.detect_every)
        rows[clip] = resampler_figures(clips[clip], faces)
        cells = "  ".join(f"{k}: {db:.2f} dB, sharpness {sharp:.2f}" for k, (db, sharp) in rows[clip].items())
        print(f"{clip:8s} {cells}")
    return rows


def mouth_checks(mouth: dict[tuple[str, str], MouthRun]) -> list[tuple[str, bool]]:
    """Issue #11's targets for the whole mouth."""
    checks = []
    for (clip, net_name), m in mouth.items():
        worst = min(min(m.coverage_marks), min(m.coverage_box))
        label = (f"{clip}/{net_name}: mask weight >= 0.99 over the central mouth region, landmark and box-only "
                 f"masks (worst {min(m.coverage_marks):.3f} / {min(m.coverage_box):.3f})")
        checks.append((label, worst >= 0.99))
        label = (f"{clip}/{net_name}: mouth core correlates >= 0.95 with the reference paste on the same frames "
                 f"(worst frame {min(m.core_vs_reference):.3f})")
        checks.append((label, min(m.core_vs_reference) >= 0.95))
    return checks


PRECISION_ORDER = ("fastest", "fast")
"""Reduced precisions, fastest first: the default is the first within the yardstick."""


@dataclass
class PrecisionFigures:
    face_db: float
    face_share: float
    mouth_db: float
    mouth_share: float


def _share_off(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16)) > 2))


def _faces_u8(pred: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(pred * 255.0), 0, 255).astype(np.uint8)


def _mouths(frames: Sequence[Frame], faces: Sequence[FaceFrame], pred: np.ndarray) -> np.ndarray:
    """The output's mouth region (the lower half of each box, default compositing), concatenated."""
    parts = []
    for frame, face, p in zip(frames, faces, pred):
        box = face.box
        assert box is not None
        out, _ = paste_mouth(frame, p, box, face.landmarks)
        parts.append(out[box.top + box.height // 2 : box.bottom, box.left : box.right].reshape(-1))
    return np.concatenate(parts)


def precision_section(
    clips: dict[str, list[Frame]], tracking: dict[str, Clip], checkpoint: str
) -> tuple[dict[str, PrecisionFigures], str]:
    """Per precision (and the yardstick: exact on frames moved by -1/0/+1 level, what another
    decoder does), the error of the generated faces and of the output's mouth region against
    exact; the default is the fastest precision within the yardstick on both clips."""
    import shutil

    from lipsync.models.wav2lip.generator import load_generator

    print("\n# Precision: generated faces (96x96) and output mouth region against exact, both clips pooled")
    local = ROOT / "bench" / "results" / Path(checkpoint).name  # the converted models are cached beside it
    local.parent.mkdir(parents=True, exist_ok=True)
    if not local.is_file() or local.stat().st_size != Path(checkpoint).stat().st_size:
        shutil.copy2(checkpoint, local)
    mel = melspectrogram(to_model_rate(load_audio(MEDIA / "speech_espeak_16k_5s.wav")))
    rng = np.random.default_rng(7)
    exact = load_generator(local, "cpu", precision="exact")
    gens = {p: load_generator(local, "cpu", precision=p) for p in ("fast", "fastest")}
    faces_by: dict[str, list[np.ndarray]] = {k: [] for k in ("exact", "yardstick (+-1 level input)", *gens)}
    mouths_by: dict[str, list[np.ndarray]] = {k: [] for k in faces_by}
    for clip, name in (("closeup", "moving"), ("full", "moving_small")):
        frames = clips[clip]
        faces = track(tracking[name].region_dets or tracking[name].dets, frames[0].shape[:2], "steady")
        boxes = [f.box for f in faces]
        windows = mel_windows(mel, FPS, len(frames))
        crops = crop_faces(frames, boxes)  # type: ignore[arg-type]
        moved = np.clip(crops.astype(np.int16) + rng.integers(-1, 2, crops.shape), 0, 255).astype(np.uint8)
        preds = {"exact": predict(exact, windows, crops, 8), "yardstick (+-1 level input)": predict(exact, windows, moved, 8)}
        for p, gen in gens.items():
            preds[p] = gen.generate(crops, windows, 8)
        for label, pred in preds.items():
            faces_by[label].append(_faces_u8(pred).reshape(-1))
            mouths_by[label].append(_mouths(frames, faces, pred))
    ref_faces, ref_mouths = np.concatenate(faces_by["exact"]), np.concatenate(mouths_by["exact"])
    figures: dict[str, PrecisionFigures] = {}
    print(f"{'':30s} | faces PSNR   > 2 levels | mouth PSNR   > 2 levels | note")
    for label in faces_by:
        if label == "exact":
            continue
        f, m = np.concatenate(faces_by[label]), np.concatenate(mouths_by[label])
        figures[label] = PrecisionFigures(psnr(f, ref_faces), _share_off(f, ref_faces), psnr(m, ref_mouths), _share_off(m, ref_mouths))
        r = figures[label]
        note = getattr(gens.get(label), "note", None) or ""
        print(f"{label:30s} | {r.face_db:7.2f} dB  {100 * r.face_share:6.1f} %  | {r.mouth_db:7.2f} dB  "
              f"{100 * r.mouth_share:6.1f} %  | {note}")
    stick = figures["yardstick (+-1 level input)"]
    within = [p for p in PRECISION_ORDER
              if figures[p].face_db >= stick.face_db and figures[p].mouth_db >= stick.mouth_db
              and figures[p].face_share <= stick.face_share and figures[p].mouth_share <= stick.mouth_share]
    best = within[0] if within else "exact"
    print(f"fastest precision within the yardstick: {best} (default: {DEFAULTS.model.precision})")
    return figures, best


def target_checks(
    results: dict[tuple[str, str, str], CompositeRun],
    figures: dict[str, TrackFigures],
    resampling: dict[str, Scores],
    precision: str | None = None,
) -> list[tuple[str, bool]]:
    checks = []
    for clip in CLIPS:
        for net_name in ("random weights", "identity network"):
            r = results[(clip, net_name, "default (mouth)")]
            worst = min(min_db(r.upper), min_db(r.background))
            label = f"{clip}/{net_name}: default upper face and background PSNR >= 45 dB (worst frame {worst:.1f} dB)"
            checks.append((label, worst >= 45.0))
            ratio = float(np.mean(r.seam) / np.mean(r.around))
            label = f"{clip}/{net_name}: default seam gradient <= the image's around it (ratio {ratio:.2f})"
            checks.append((label, ratio <= 1.0))
    checks += tracking_checks(figures)
    if precision is not None:
        checks.append((f"the default precision ({DEFAULTS.model.precision}) is the fastest within the +-1 level "
                       f"yardstick ({precision})", DEFAULTS.model.precision == precision))
    for clip, rows in resampling.items():
        best = max(rows, key=lambda k: rows[k][0])
        label = f"{clip}: the default resampler (lanczos) is the best by PSNR (best: {best})"
        checks.append((label, best == "lanczos"))
    return checks


def tracking_checks(figures: dict[str, TrackFigures]) -> list[tuple[str, bool]]:
    """The steady-box targets: the default against the reference on still, moving and turning heads."""
    checks = []
    ref, ours = figures["reference (5-frame mean)"], figures[DEFAULT_ROW]
    checks.append((
        f"still head: our jitter below the reference's ({ours.still_step:.3f} vs {ref.still_step:.3f} px; "
        f"95 px face {ours.small_still_step:.3f} vs {ref.small_still_step:.3f})",
        ours.still_step < ref.still_step and ours.small_still_step < ref.small_still_step,
    ))
    checks.append((
        f"moving head: our box nearer the true motion ({ours.moving_rms:.2f} vs {ref.moving_rms:.2f} px RMS; "
        f"95 px face {ours.small_moving_rms:.2f} vs {ref.small_moving_rms:.2f})",
        ours.moving_rms < ref.moving_rms and ours.small_moving_rms < ref.small_moving_rms,
    ))
    checks.append((
        f"fast turn: our box within 3 % of the ~200 px face at every frame (max {ours.turn_max:.1f} px, mean "
        f"{ours.turn_mean:.1f} while moving; reference max {ref.turn_max:.1f}, mean {ref.turn_mean:.1f})",
        ours.turn_max <= 6.0,
    ))
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=125, help="frames of each clip (default 125, all)")
    p.add_argument("--checkpoint", default=str(CHECKPOINT), help="Wav2Lip weights (default: the random fixture)")
    p.add_argument("--no-sweep", action="store_true", help="skip the steady-parameter sweep")
    p.add_argument("--no-precision", action="store_true", help="skip the CPU precision section")
    p.add_argument("--faces-only", action="store_true",
                   help="only the face sections (steady boxes, one speaker) and their targets: ~1/3 of the time")
    args = p.parse_args(argv)

    clips = {k: list(iter_frames(MEDIA / v, frame_load_cap=args.frames)) for k, v in CLIPS.items()}
    tracking = tracking_clips(clips, args.frames)
    figures = steady_section(tracking, clips["closeup"][0].shape[:2], not args.no_sweep)
    if args.faces_only:
        speaker = speaker_section()
        print("\n# Targets (faces only)")
        checks = tracking_checks(figures) + speaker_checks(speaker)
    else:
        results, mouth = composite_section(clips, tracking, args.checkpoint)
        resampling = resampler_section(clips, tracking)
        speaker = speaker_section()
        best = None if args.no_precision else precision_section(clips, tracking, args.checkpoint)[1]
        print("\n# Targets (issues #5, #11, #13)")
        checks = target_checks(results, figures, resampling, best) + mouth_checks(mouth) + speaker_checks(speaker)
    for label, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
