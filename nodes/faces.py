"""ReSync Detect Faces: one face box per frame of an IMAGE batch, and a preview with the boxes.

Detection and tracking are the library's (the reference's padding and 5-frame smoothing,
streaming): the face track keeps one entry per frame, with no box where the missing-face
policy leaves the frame untouched, so it stays aligned with the frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from comfy_api.latest import io

from ..lipsync.engine.graph import FaceTrack, draw_face
from ..lipsync.engine.stages import face_tracker
from ..lipsync.errors import InputError
from ..lipsync.faces import FaceTracker, create_detector, fixed_box_track, run_detection
from ..lipsync.options import FaceOptions
from ..lipsync.types import Detection, FaceFrame, Frame
from . import _host
from ._common import BOX_TOOLTIP, FACES, category, memory_problem
from ._convert import check_images, frame_at, iter_frames
from ._options import Uses, options_from_inputs

__all__ = ["DETECTOR_TOOLTIP", "FACE_WIDGETS", "DetectFaces"]

DETECTOR_TOOLTIP = (
    "auto: the best one installed (insightface if its buffalo_l pack is in models/insightface, else yuface, "
    "else yunet). yuface: offline, no download (~40 ms a frame on 2 CPU cores). yunet: OpenCV's, downloads "
    "a 230 KB model into models/facedetect once. insightface: most accurate, needs pip install insightface "
    "onnxruntime."
)


_PAD = "Grow the detected box by this many pixels at the {} (the reference's pads; {}). Cost: none."

FACE_WIDGETS = {
    "detector": {"tooltip": DETECTOR_TOOLTIP},
    "fixed_box": {"tooltip": BOX_TOOLTIP},
    "pad_top": {"tooltip": _PAD.format("top", "pixels")},
    "pad_bottom": {"tooltip": _PAD.format("bottom", "pixels; the reference's 10 includes the chin")},
    "pad_left": {"tooltip": _PAD.format("left", "pixels")},
    "pad_right": {"tooltip": _PAD.format("right", "pixels")},
    "face_index": {"tooltip": "With face = index: 0 = the leftmost face."},
    "face": {
        "tooltip": "Which person to re-sync when there are several. The one picked in the first frame with faces "
        "is followed by position and size, never switched for being larger, and found again after a miss or when "
        "they come back into view. largest: the largest face; index: the face_index-th from the left; point: the "
        "face at face_x, face_y; closest: the same as largest (its former name). Detect Faces' preview marks the "
        "chosen face. Cost: none."
    },
    "face_x": {"tooltip": "With face = point: x of a point on the chosen face, in pixels of the first frame "
               "(Detect Faces' preview shows the faces). The face holding the point, else the nearest, is followed."},
    "face_y": {"tooltip": "With face = point: y of a point on the chosen face, in pixels of the first frame."},
}
"""The face widgets' tooltips that say more than the option's help, for every node that has them."""


def _interruptible(frames: Iterator[Frame]) -> Iterator[Frame]:
    for frame in frames:
        _host.check_interrupt()
        yield frame


class _RecordingTracker(FaceTracker):
    """A tracker that keeps the faces it was given per frame (None: a frame not detected), so
    the preview can show the faces that were not chosen (a few boxes per frame: small)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.found: list[list[Detection] | None] = []

    def push(self, detections: list[Detection] | None) -> list[FaceFrame]:
        self.found.append(detections)
        return super().push(detections)


def _preview(
    images: torch.Tensor, faces: list[FaceFrame], every_frame: bool, found: list[list[Detection] | None] | None = None
) -> torch.Tensor:
    """The frames with their boxes drawn (all of them, or just the first to save memory): the
    chosen face's, and the other detected faces' (``found`` per frame) thin in grey."""
    count = len(faces) if every_frame else 1
    hint = "Turn preview off (the face track does not need it)."
    problem = memory_problem(count, int(images.shape[1]), int(images.shape[2]), hint)
    if problem:
        raise InputError(f"Not drawing the preview: {problem}")
    out = torch.empty((count, *images.shape[1:3], 3), dtype=torch.float32)
    for index in range(count):
        others = found[index] if found is not None and index < len(found) else None
        drawn = draw_face(frame_at(images, index), faces[index], others or ())
        out[index] = torch.from_numpy(drawn).to(torch.float32).div_(255.0)
    return out


class DetectFaces(io.ComfyNode):
    USES = Uses(
        groups=(FaceOptions,),
        widgets={
            **FACE_WIDGETS,
            "missing_face": {
                "tooltip": "Frames without a face: passthrough leaves them untouched, hold reuses the last box, "
                "interpolate draws a line between the boxes around the gap (up to 25 frames), fail stops "
                "with an error naming the frame."
            },
            "smoothing": {
                "tooltip": "steady: a line fit over 6 past and 4 next frames that follows real moves at once "
                "(measured in bench/quality); reference: the original's mean of the next smooth_window boxes. "
                "Cost: negligible; both wait 4 frames."
            },
            "smooth_window": {
                "tooltip": "With smoothing = reference: average each box with the next ones over this many "
                "frames (the reference's 5). 1 = no smoothing with either method."
            },
            "detect_every": {
                "tooltip": "Run the detector on every n-th frame and interpolate the boxes in between: n times "
                "faster detection, less precise on fast moves."
            },
        },
    )

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ReSyncDetectFaces",
            display_name="ReSync Detect Faces",
            category=category("faces"),
            description=(
                "Find the face to re-sync in every frame: detect, choose one face, pad, smooth the boxes (steady: "
                "no jitter on a still head and no lag on a moving one; or the original Wav2Lip's 5-frame mean), "
                "and fill frames without a face by the missing-face policy. "
                "Several people: one is picked (the largest, the n-th from the left, or the one at a point) and "
                "followed by position and size. Outputs the face track (one box or none per frame) and a preview "
                "with the chosen face's box drawn thick (green: detected, orange: filled in, red dots: landmarks) "
                "and the other faces thin in grey."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The video frames (an IMAGE batch)."),
                *cls.USES.inputs(FaceOptions, (
                    "detector", "missing_face", "face", "face_index", "pad_top", "pad_bottom", "pad_left",
                    "pad_right", "smoothing", "smooth_window", "detect_every", "fixed_box",
                )),
                io.Boolean.Input(
                    "preview", default=True,
                    tooltip="Draw the boxes on every frame (a second IMAGE batch as large as the input); off: "
                    "the preview is only the first frame, which saves that memory on long clips.",
                ),
                # added later: optional, after every older input, so saved workflows keep their values
                *cls.USES.inputs(FaceOptions, ("face_point",), optional=True),
            ],
            outputs=[
                FACES.Output(display_name="faces", tooltip="The face track: one box (or none) per frame."),
                io.Image.Output(display_name="preview", tooltip="The frames with the boxes and landmarks drawn."),
            ],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, preview: bool = True, **settings: Any) -> io.NodeOutput:
        opts: FaceOptions = options_from_inputs(FaceOptions, settings, cls.USES.widgets)
        images = check_images(images, "images")
        count, height, width = (int(v) for v in images.shape[:3])
        if opts.box is not None:
            faces = [fixed_box_track(opts.box, (height, width))] * count
            track = FaceTrack(tuple(faces), (height, width), detector="fixed box")
            return io.NodeOutput(track, _preview(images, faces, bool(preview)))
        finder = create_detector(opts.detector, models_dir=_host.detector_models_dir())
        tracker = face_tracker((height, width), opts, _RecordingTracker)
        progress = _host.progress_bar(count)
        faces: list[FaceFrame] = []
        frames = _interruptible(iter_frames(images))
        for _, found in run_detection(frames, finder, tracker, detect_every=opts.detect_every):
            faces.append(found)
            progress(len(faces), count)
        track = FaceTrack(tuple(faces), (height, width), detector=finder.name)
        return io.NodeOutput(track, _preview(images, faces, bool(preview), tracker.found))
