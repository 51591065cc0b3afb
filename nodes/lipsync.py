"""ReSync Lip-Sync Video: the whole job in one node, streaming, for inputs of any length.

It runs the library's ``lipsync_video`` on the file: frames are decoded, detected, generated,
composited and encoded a chunk at a time, so memory does not grow with the video's length (a
test runs a minute of 720p in the same RAM as twelve seconds); nothing becomes an IMAGE batch.
Only the AUDIO input is held whole (an hour of 48 kHz stereo is 1.4 GB as the host's float32).
The progress bar moves per chunk, Cancel stops between chunks and leaves no output file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from comfy_api.latest import io, ui

from ..lipsync.errors import InputError
from ..lipsync.engine.lipsync import DEFAULT_BATCH_SIZE, LipSyncOptions, lipsync_video
from ..lipsync.types import (
    Blend,
    ColorMatch,
    CompositeMode,
    DetectorName,
    FaceChoice,
    LengthPolicy,
    MissingFacePolicy,
    Smoothing,
    choices,
)
from ..lipsync.media.video import probe
from . import _host
from ._common import (
    BOX_TOOLTIP,
    FPS_MAX,
    WAV2LIP,
    category,
    fps_problem,
    input_video_problem,
    input_videos,
    mtime,
    parse_box,
)
from ._convert import to_waveform
from .faces import DETECTOR_TOOLTIP
from .model import Wav2LipModel
from .restore import model_names as restore_model_names
from .restore import placed_restorer

__all__ = ["LipSyncVideo"]


@contextmanager
def _video_file(video: str, video_input: Any) -> Iterator[str]:
    """A path to stream from: the VIDEO input's own file, a temporary copy of an in-memory
    VIDEO (removed afterwards), or the input-folder file ``video``."""
    if video_input is None:
        if not video:
            raise InputError("No video: pick a file in 'video' (upload one) or connect a VIDEO to video_input.")
        path = _host.folder_paths().get_annotated_filepath(video)
        problem = input_video_problem(video, path)
        if problem:
            raise InputError(problem)
        yield str(path)
        return
    source = video_input.get_stream_source()
    if isinstance(source, (str, os.PathLike)):
        yield os.fspath(source)
        return
    temp_dir = _host.folder_paths().get_temp_directory()
    os.makedirs(temp_dir, exist_ok=True)
    handle, temp = tempfile.mkstemp(suffix=".mp4", prefix="resync-", dir=temp_dir)
    try:
        with os.fdopen(handle, "wb") as out:
            shutil.copyfileobj(source, out)
        yield temp
    finally:
        os.remove(temp)


def _should_stop() -> bool:
    _host.check_interrupt()  # raises the host's interrupt exception when Cancel was pressed
    return False


class LipSyncVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        files = input_videos(_host.folder_paths().get_input_directory())
        return io.Schema(
            node_id="ReSyncLipSyncVideo",
            display_name="ReSync Lip-Sync Video",
            category=category("video"),
            description=(
                "The whole lip-sync in one node, streaming: memory stays flat however long the video (an hour of "
                "720p is fine), nothing becomes an IMAGE batch. The result is as long as the audio (the video is "
                "cut, or extended by length_policy) and is saved as an H.264 + AAC mp4 with the workflow embedded. "
                "Takes a video from the input folder, or any VIDEO (core Load Video) on video_input."
            ),
            inputs=[
                io.Combo.Input(
                    "video", options=files, upload=io.UploadType.video,
                    tooltip="Video (or image) in ComfyUI's input folder; ignored when video_input is connected. "
                    "It is read a frame at a time, never loaded whole.",
                ),
                io.Audio.Input("audio", tooltip="The new voice (any AUDIO: Load Audio, a TTS node). Held in RAM."),
                WAV2LIP.Input("model", tooltip="The network from ReSync Load Wav2Lip Model."),
                io.Combo.Input(
                    "mode", options=choices(CompositeMode), default="mouth",
                    tooltip="mouth: only the mouth and chin change, soft edges. reference: the whole box, as the "
                    "original Wav2Lip.",
                ),
                io.Float.Input("feather", default=0.15, min=0.0, max=0.5, step=0.01,
                               tooltip="mouth mode: soft edge width, as a fraction of the face box width."),
                io.Combo.Input("color_match", options=choices(ColorMatch), default="off",
                               tooltip="mouth mode: lab matches the generated region's colours to the original "
                               "(mean/std in L*a*b* under the mask). ~1 ms per frame."),
                io.Combo.Input("blend", options=choices(Blend), default="feather",
                               tooltip="mouth mode: feather (soft alpha edge) or seamless (Poisson cloning, then "
                               "the soft edge; ~5-20 ms per frame)."),
                io.Combo.Input("restore_model", options=["none", *restore_model_names()], default="none",
                               tooltip="A face restorer from models/facerestore_models (GFPGAN, RestoreFormer; "
                               "CodeFormer with spandrel-extra-arches, non-commercial) run on each generated "
                               "face at 512 px, blended only inside the mouth mask. Costs a 512 px network pass "
                               "per frame."),
                io.Float.Input("restore_strength", default=1.0, min=0.0, max=1.0, step=0.05,
                               tooltip="How much of the restored face replaces the generated one (0-1)."),
                io.Float.Input("restore_fidelity", default=0.5, min=0.0, max=1.0, step=0.05,
                               tooltip="CodeFormer only: 0 = most restored, 1 = closest to the input."),
                io.Combo.Input("detector", options=choices(DetectorName), default="auto", tooltip=DETECTOR_TOOLTIP),
                io.Combo.Input(
                    "missing_face", options=choices(MissingFacePolicy), default="passthrough",
                    tooltip="Frames without a face: passthrough (unchanged), hold (last box), interpolate, or fail.",
                ),
                io.Combo.Input("face", options=choices(FaceChoice), default="largest",
                               tooltip="Several faces: the largest, the face_index-th from the left, or the closest."),
                io.Int.Input("face_index", default=0, min=0, max=64, tooltip="With face = index: 0 = the leftmost."),
                io.Int.Input("pad_bottom", default=10, min=0, max=1024,
                             tooltip="Grow the face box downwards by this many pixels (the reference's 10)."),
                io.String.Input("fixed_box", default="", tooltip=BOX_TOOLTIP),
                io.Combo.Input("smoothing", options=choices(Smoothing), default="steady",
                               tooltip="Face box smoothing: steady (no jitter, follows real moves) or reference "
                               "(the original's 5-frame mean)."),
                io.Combo.Input(
                    "length_policy", options=choices(LengthPolicy), default="auto",
                    tooltip="Audio longer than the video: loop, pingpong or freeze the video (auto = pingpong); "
                    "trim stops at the shorter of the two.",
                ),
                io.Float.Input("audio_offset_ms", default=0.0, min=-2000.0, max=2000.0, step=5.0,
                               tooltip="Shift the sync in milliseconds: positive = the mouth moves later."),
                io.Float.Input(
                    "fps", default=0.0, min=0.0, max=FPS_MAX, step=0.01,
                    tooltip="Output frames per second: 0 = the video's own rate (still images: 25).",
                ),
                io.Int.Input("batch_size", default=DEFAULT_BATCH_SIZE, min=1, max=512,
                             tooltip="Faces per network call: larger is faster on a GPU and takes more VRAM."),
                io.Int.Input("detect_every", default=1, min=1, max=100,
                             tooltip="Detect on every n-th frame and interpolate between: faster, less precise."),
                io.String.Input("filename_prefix", default="ReSync/lipsync",
                                tooltip="Output name under ComfyUI's output folder; a counter is added."),
                io.Video.Input(
                    "video_input", optional=True,
                    tooltip="A VIDEO to use instead of the video file (streamed from its file when it has one).",
                ),
            ],
            outputs=[
                io.Video.Output(display_name="video", tooltip="The saved lip-synced video."),
                io.String.Output(display_name="path", tooltip="Full path of the saved mp4."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, video: str | None = None, fps: float | None = None) -> bool | str:
        if fps:
            problem = fps_problem(fps)
            if problem:
                return problem
        if video:  # empty: a VIDEO is expected on video_input
            return input_video_problem(video, _host.folder_paths().get_annotated_filepath(video)) or True
        return True

    @classmethod
    def fingerprint_inputs(cls, video: str = "", **_: Any) -> float:
        return mtime(_host.folder_paths().get_annotated_filepath(video)) if video else float("nan")

    @classmethod
    def execute(
        cls,
        audio: Any,
        model: Wav2LipModel,
        video: str = "",
        mode: str = "mouth",
        feather: float = 0.15,
        color_match: str = "off",
        blend: str = "feather",
        restore_model: str = "none",
        restore_strength: float = 1.0,
        restore_fidelity: float = 0.5,
        detector: str = "auto",
        missing_face: str = "passthrough",
        face: str = "largest",
        face_index: int = 0,
        pad_bottom: int = 10,
        fixed_box: str = "",
        smoothing: str = "steady",
        length_policy: str = "auto",
        audio_offset_ms: float = 0.0,
        fps: float = 0.0,
        batch_size: int = DEFAULT_BATCH_SIZE,
        detect_every: int = 1,
        filename_prefix: str = "ReSync/lipsync",
        video_input: Any = None,
    ) -> io.NodeOutput:
        problem = fps_problem(fps) if fps else None
        if problem:
            raise InputError(problem)
        opts = LipSyncOptions.of(
            mode=mode,  # type: ignore[arg-type]
            batch_size=int(batch_size),
            box=parse_box(fixed_box),
            detector=detector,  # type: ignore[arg-type]
            models_dir=_host.detector_models_dir(),
            pads=(0, int(pad_bottom), 0, 0),
            face_choice=face,  # type: ignore[arg-type]
            face_index=int(face_index),
            missing_face=missing_face,  # type: ignore[arg-type]
            detect_every=int(detect_every),
            length_policy=length_policy,  # type: ignore[arg-type]
            audio_offset_ms=float(audio_offset_ms),
            fps=float(fps) or None,
            feather=float(feather),
            smoothing=smoothing,  # type: ignore[arg-type]
            color_match=color_match,  # type: ignore[arg-type]
            blend=blend,  # type: ignore[arg-type]
            restore_strength=float(restore_strength),
            restore_fidelity=float(restore_fidelity),
        )
        restorer = None if restore_model == "none" else placed_restorer(restore_model)
        wave = to_waveform(audio)
        metadata = _host.file_metadata(cls.hidden.prompt, cls.hidden.extra_pnginfo)
        with _video_file(video, video_input) as source:
            info = probe(source)
            path, filename, subfolder = _host.save_path(filename_prefix, info.width, info.height, "mp4")
            lipsync_video(
                source, wave, path, model.generator(), opts,
                progress=_host.progress_bar(1), should_stop=_should_stop, metadata=metadata, restorer=restorer,
            )
        _host.model_management().soft_empty_cache()
        result = ui.SavedResult(filename, subfolder, io.FolderType.output)
        return io.NodeOutput(_host.video_from_file(path), path, ui=ui.PreviewVideo([result]))
