"""Array-level stages for callers that hold whole batches (the ComfyUI node graph).

The streaming pipeline (``lipsync.engine.lipsync``) pushes frames through in chunks; a node graph
instead hands every stage a whole batch and passes small payloads between them. This module
defines those payloads and the batch functions, built from the same pieces as the pipeline
(``generate``, ``composite``), so both paths give the same pixels.

Length rule of the graph (the same as the CLI's): the output is as long as the mel windows,
``MelFrames.windows`` (one per output frame). ``sequence_indices`` maps each output frame to a
frame of the video batch with the length policy, so a short clip can cover a long audio (loop,
ping-pong, freeze) and a long clip is cut to a short one (trim).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import cv2
import numpy as np
import numpy.typing as npt

from ..composite import paste
from ..errors import InputError
from ..models.base import CropSpec, Generator, crop_faces
from ..options import CompositeOptions
from ..types import (
    Blend,
    Box,
    ColorMatch,
    CompositeMode,
    Detection,
    FaceFrame,
    Frame,
    LengthPolicy,
    MelWindows,
    choices,
)

__all__ = [
    "FaceTrack",
    "MelFrames",
    "audio_windows",
    "composite_face",
    "draw_face",
    "generate_faces",
    "region_track",
    "sequence_indices",
]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class MelFrames:
    """The audio cut into one 200 ms mel window per output video frame (ComfyUI type RESYNC_MEL).

    ``windows`` is float32 (N, 80, 16): N is the length of the lip-synced clip. ``audio_frames``
    is how many frames at ``fps`` cover the whole audio (N differs when a frame count was
    forced). ``length_policy`` says how a video batch of another length is mapped onto the N
    frames (see ``sequence_indices``). ``wav16k``: the voice itself, float32 mono at 16 kHz
    (zero-padded to N frames when a longer clip was asked for), from which a model family with
    other audio features (MuseTalk's whisper windows) computes its own (``audio_windows``).
    """

    windows: MelWindows
    fps: Fraction
    length_policy: LengthPolicy
    audio_frames: int
    offset_ms: float = 0.0
    wav16k: F32 | None = None

    def __len__(self) -> int:
        return int(self.windows.shape[0])


@dataclass(frozen=True)
class FaceTrack:
    """One face (or none) per frame, in frame pixels (ComfyUI type RESYNC_FACES).

    ``faces[i]`` belongs to frame ``source_index[i]`` of the video batch; ``source_index`` None
    means entry i is frame i (the track of a detector). A track from the generator has one entry
    per output frame and its ``source_index`` records the length policy's mapping, so the
    compositor rebuilds the same sequence of frames.
    """

    faces: tuple[FaceFrame, ...]
    frame_size: tuple[int, int]
    """(height, width) of the frames the boxes refer to."""
    detector: str = ""
    source_index: I64 | None = None

    def __len__(self) -> int:
        return len(self.faces)

    @property
    def frames_with_face(self) -> int:
        return sum(1 for face in self.faces if face.box is not None)

    def sources(self) -> I64:
        """The video frame of each entry (identity when no mapping is recorded)."""
        if self.source_index is None:
            return np.arange(len(self.faces), dtype=np.int64)
        return self.source_index


def sequence_indices(n_source: int, n_out: int, policy: LengthPolicy) -> I64:
    """Which of ``n_source`` video frames each of ``n_out`` output frames shows.

    The same sequence as ``lipsync.engine.length.sequence_frames``: the video plays once, then
    ``loop`` restarts at 0, ``pingpong`` plays backwards and forwards (0 1 … n-1 n-2 … 0 1 …),
    ``freeze`` holds the last frame, ``trim`` stops (fewer than ``n_out`` indices), and
    ``auto`` is ``trim`` when the video is long enough and ``pingpong`` otherwise.
    """
    if policy not in choices(LengthPolicy):
        raise InputError(f"Unknown length policy {policy!r}; choose one of: {', '.join(choices(LengthPolicy))}.")
    if n_source <= 0 or n_out <= 0:
        return np.zeros(0, dtype=np.int64)
    i = np.arange(n_out, dtype=np.int64)
    if n_out <= n_source or policy == "trim":
        return i[: min(n_out, n_source)]
    if policy == "freeze" or n_source == 1:
        return np.minimum(i, n_source - 1)
    if policy == "loop":
        return i % n_source
    period = 2 * (n_source - 1)  # pingpong (and auto once the video is too short)
    k = i % period
    return np.where(k < n_source, k, period - k)


def audio_windows(mel: MelFrames, generator: Generator) -> Callable[[int, int], np.ndarray]:
    """``windows(start, count)``: the audio windows ``generator`` takes for output frames
    start … start+count-1. Wav2Lip: the mel windows Audio To Mel computed (``mel.windows``); other
    families: their own features of ``mel.wav16k`` (prepared once, here), at ``mel.fps`` with
    ``mel.offset_ms``. InputError when a MuseTalk-like generator gets a MelFrames without the voice."""
    if generator.family == "wav2lip":
        return lambda start, count: mel.windows[start : start + count]
    if mel.wav16k is None:
        raise InputError(f"The {generator.family} model needs the voice itself: connect a ReSync Audio To Mel output.")
    features = generator.prepare_audio(mel.wav16k)
    return lambda start, count: features.windows(mel.fps, start, count, offset_ms=mel.offset_ms)


def region_track(faces: Sequence[FaceFrame], frame_size: tuple[int, int], crop: CropSpec) -> tuple[FaceFrame, ...]:
    """``faces`` with each box replaced by the region ``crop`` takes and gives back for it (the box
    plus the generator's bottom margin, ``CropSpec.region``): where Composite pastes the face."""
    return tuple(
        face if face.box is None else replace(face, box=crop.region(face.box, frame_size)) for face in faces
    )


def generate_faces(
    frames: Sequence[Frame],
    faces: Sequence[FaceFrame],
    windows: np.ndarray,
    generator: Generator,
    batch_size: int,
) -> F32:
    """The network's face for each frame: float32 (N, 3, S, S) **BGR** in [0, 1] at the generator's size S.

    ``frames``, ``faces`` and ``windows`` (the generator's audio windows, ``audio_windows``) are
    aligned (N each). Frames without a face box get a
    black placeholder, so the result stays aligned with the frames.
    """
    if not len(frames) == len(faces) == len(windows):
        raise ValueError(f"{len(frames)} frames, {len(faces)} faces and {len(windows)} mel windows")
    size = generator.crop.size
    out = np.zeros((len(frames), 3, size, size), dtype=np.float32)
    with_face = [i for i, face in enumerate(faces) if face.box is not None]
    if with_face:
        regions = [generator.crop.region(faces[i].box, frames[i].shape[:2]) for i in with_face]  # type: ignore[arg-type]
        crops = crop_faces([frames[i] for i in with_face], regions, generator.crop)
        out[with_face] = generator.generate(crops, np.asarray(windows)[with_face], batch_size)
    return out


def composite_face(
    frame: Frame,
    face_rgb: F32,
    face: FaceFrame,
    mode: CompositeMode = "mouth",
    feather: float = 0.15,
    *,
    color_match: ColorMatch = "off",
    blend: Blend = "feather",
) -> tuple[Frame, F32]:
    """Paste a generated face (float RGB (h, w, 3) in [0, 1], any size) into ``frame``.

    Returns the new frame and the blend mask over the whole frame (H, W) in [0, 1]. ``reference``
    truncates to uint8 and hard-pastes the whole box (bit-exact with the original when the face
    is the network's 96x96 output); ``mouth`` blends only the lower face. No box: the frame as
    it is and an empty mask.
    """
    if mode not in choices(CompositeMode):
        raise InputError(f"Unknown composite mode {mode!r}; choose one of: {', '.join(choices(CompositeMode))}.")
    height, width = frame.shape[:2]
    mask = np.zeros((height, width), dtype=np.float32)
    box = face.box
    if box is None:
        return frame, mask
    face_bgr = np.asarray(face_rgb, dtype=np.float32)[:, :, ::-1]
    options = CompositeOptions(mode=mode, feather=feather, color_match=color_match, blend=blend)
    if mode == "reference":  # the reference's truncation of an IMAGE in [0, 1]
        generated: np.ndarray = (face_bgr * 255.0).astype(np.uint8)
    else:
        generated = np.ascontiguousarray(face_bgr.transpose(2, 0, 1))
    out, local = paste(frame, generated, box, face.landmarks, options)
    mask[box.top : box.bottom, box.left : box.right] = 1.0 if local is None else local
    return out, mask


_DETECTED = (0, 220, 0)
_FILLED = (255, 160, 0)
_LANDMARK = (255, 0, 0)
_OTHER = (150, 150, 150)


def draw_face(frame: Frame, face: FaceFrame, others: Sequence[Detection] = ()) -> Frame:
    """A copy of ``frame`` with the chosen face's box drawn thick (green: detected, orange: filled
    in by the missing-face policy) with its five landmarks as red dots, and the boxes of the
    ``others`` (the detector's faces in this frame that are not the chosen one: any that overlaps
    the chosen box by less than half) thin in grey."""
    out = np.ascontiguousarray(frame).copy()
    thickness = max(1, round(max(out.shape[:2]) / 300))
    box = face.box
    for det in others:
        if box is not None and _overlap(det, box) >= 0.5:
            continue
        corners = np.array([det.x1, det.y1, det.x2, det.y2], np.float64)
        if np.isfinite(corners).all():
            x1, y1, x2, y2 = (round(float(v)) for v in corners)
            cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), _OTHER, 1)
    if box is None:
        return out
    color = _DETECTED if face.detected else _FILLED
    cv2.rectangle(out, (box.left, box.top), (box.right - 1, box.bottom - 1), color, thickness * 2)
    if face.landmarks is not None:
        for x, y in np.asarray(face.landmarks).reshape(-1, 2):
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(out, (round(float(x)), round(float(y))), thickness + 1, _LANDMARK, -1)
    return out


def _overlap(det: Detection, box: Box) -> float:
    """The part of the detection's area that lies inside ``box`` (0-1)."""
    w = min(det.x2, box.right) - max(det.x1, box.left)
    h = min(det.y2, box.bottom) - max(det.y1, box.top)
    return max(w, 0.0) * max(h, 0.0) / max(det.area, 1e-6)
