"""ReSync Detect Faces: one face box per frame of an IMAGE batch, and a preview with the boxes.

Detection and tracking are the library's (the reference's padding and 5-frame smoothing,
streaming): the face track keeps one entry per frame, with no box where the missing-face
policy leaves the frame untouched, so it stays aligned with the frames.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from comfy_api.latest import io

from ..lipsync.errors import InputError
from ..lipsync.faces import FaceTracker, create_detector, fixed_box_track, run_detection
from ..lipsync.engine.graph import FaceTrack, draw_face
from ..lipsync.types import DetectorName, FaceChoice, FaceFrame, Frame, MissingFacePolicy, Smoothing, choices
from . import _host
from ._common import BOX_TOOLTIP, FACES, category, memory_problem, parse_box
from ._convert import check_images, frame_at, iter_frames

__all__ = ["DetectFaces"]

DETECTOR_TOOLTIP = (
    "auto: the best one installed (insightface if its buffalo_l pack is in models/insightface, else yuface, "
    "else yunet). yuface: offline, no download (~40 ms a frame on 2 CPU cores). yunet: OpenCV's, downloads "
    "a 230 KB model into models/facedetect once. insightface: most accurate, needs pip install insightface "
    "onnxruntime."
)


def _interruptible(frames: Iterator[Frame]) -> Iterator[Frame]:
    for frame in frames:
        _host.check_interrupt()
        yield frame


def _preview(images: torch.Tensor, faces: list[FaceFrame], every_frame: bool) -> torch.Tensor:
    """The frames with their boxes drawn (all of them, or just the first to save memory)."""
    count = len(faces) if every_frame else 1
    hint = "Turn preview off (the face track does not need it)."
    problem = memory_problem(count, int(images.shape[1]), int(images.shape[2]), hint)
    if problem:
        raise InputError(f"Not drawing the preview: {problem}")
    out = torch.empty((count, *images.shape[1:3], 3), dtype=torch.float32)
    for index in range(count):
        drawn = draw_face(frame_at(images, index), faces[index])
        out[index] = torch.from_numpy(drawn).to(torch.float32).div_(255.0)
    return out


class DetectFaces(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        pad = "Grow the detected box by this many pixels at the {} (the reference's pads; {}). Cost: none."
        return io.Schema(
            node_id="ReSyncDetectFaces",
            display_name="ReSync Detect Faces",
            category=category("faces"),
            description=(
                "Find the face to re-sync in every frame: detect, choose one face, pad, smooth the boxes (steady: "
                "no jitter on a still head and no lag on a moving one; or the original Wav2Lip's 5-frame mean), "
                "and fill frames without a face by the missing-face policy. "
                "Outputs the face track (one box or none per frame) and a preview with the boxes drawn "
                "(green: detected, orange: filled in, red dots: landmarks)."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The video frames (an IMAGE batch)."),
                io.Combo.Input("detector", options=choices(DetectorName), default="auto", tooltip=DETECTOR_TOOLTIP),
                io.Combo.Input(
                    "missing_face", options=choices(MissingFacePolicy), default="passthrough",
                    tooltip="Frames without a face: passthrough leaves them untouched, hold reuses the last box, "
                    "interpolate draws a line between the boxes around the gap (up to 25 frames), fail stops "
                    "with an error naming the frame.",
                ),
                io.Combo.Input(
                    "face", options=choices(FaceChoice), default="largest",
                    tooltip="Several faces in a frame: the largest, the face_index-th from the left, or the one "
                    "closest to the previous frame's face.",
                ),
                io.Int.Input(
                    "face_index", default=0, min=0, max=64, tooltip="With face = index: 0 = the leftmost face."
                ),
                io.Int.Input("pad_top", default=0, min=0, max=1024, tooltip=pad.format("top", "pixels")),
                io.Int.Input(
                    "pad_bottom", default=10, min=0, max=1024,
                    tooltip=pad.format("bottom", "pixels; the reference's 10 includes the chin"),
                ),
                io.Int.Input("pad_left", default=0, min=0, max=1024, tooltip=pad.format("left", "pixels")),
                io.Int.Input("pad_right", default=0, min=0, max=1024, tooltip=pad.format("right", "pixels")),
                io.Combo.Input(
                    "smoothing", options=choices(Smoothing), default="steady",
                    tooltip="steady: a line fit over 6 past and 4 next frames that follows real moves at once "
                    "(measured in bench/quality); reference: the original's mean of the next smooth_window boxes. "
                    "Cost: negligible; both wait 4 frames.",
                ),
                io.Int.Input(
                    "smooth_window", default=5, min=1, max=50,
                    tooltip="With smoothing = reference: average each box with the next ones over this many "
                    "frames (the reference's 5). 1 = no smoothing with either method.",
                ),
                io.Int.Input(
                    "detect_every", default=1, min=1, max=100,
                    tooltip="Run the detector on every n-th frame and interpolate the boxes in between: n times "
                    "faster detection, less precise on fast moves.",
                ),
                io.String.Input("fixed_box", default="", tooltip=BOX_TOOLTIP),
                io.Boolean.Input(
                    "preview", default=True,
                    tooltip="Draw the boxes on every frame (a second IMAGE batch as large as the input); off: "
                    "the preview is only the first frame, which saves that memory on long clips.",
                ),
            ],
            outputs=[
                FACES.Output(display_name="faces", tooltip="The face track: one box (or none) per frame."),
                io.Image.Output(display_name="preview", tooltip="The frames with the boxes and landmarks drawn."),
            ],
        )

    @classmethod
    def execute(
        cls,
        images: torch.Tensor,
        detector: str = "auto",
        missing_face: str = "passthrough",
        face: str = "largest",
        face_index: int = 0,
        pad_top: int = 0,
        pad_bottom: int = 10,
        pad_left: int = 0,
        pad_right: int = 0,
        smoothing: str = "steady",
        smooth_window: int = 5,
        detect_every: int = 1,
        fixed_box: str = "",
        preview: bool = True,
    ) -> io.NodeOutput:
        images = check_images(images, "images")
        count, height, width = (int(v) for v in images.shape[:3])
        box = parse_box(fixed_box)
        if box is not None:
            faces = [fixed_box_track(box, (height, width))] * count
            track = FaceTrack(tuple(faces), (height, width), detector="fixed box")
            return io.NodeOutput(track, _preview(images, faces, bool(preview)))
        finder = create_detector(detector, models_dir=_host.detector_models_dir())  # type: ignore[arg-type]
        tracker = FaceTracker(
            (height, width),
            pads=(pad_top, pad_bottom, pad_left, pad_right),
            smooth_window=smooth_window,
            smoothing=smoothing,  # type: ignore[arg-type]
            choice=face,  # type: ignore[arg-type]
            face_index=face_index,
            missing=missing_face,  # type: ignore[arg-type]
        )
        progress = _host.progress_bar(count)
        faces: list[FaceFrame] = []
        frames = _interruptible(iter_frames(images))
        for _, found in run_detection(frames, finder, tracker, detect_every=detect_every):
            faces.append(found)
            progress(len(faces), count)
        track = FaceTrack(tuple(faces), (height, width), detector=finder.name)
        return io.NodeOutput(track, _preview(images, faces, bool(preview)))
