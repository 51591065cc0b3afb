"""ReSync Re-Voice Segment: replace the speech of one time range of a finished video.

It runs the library's ``revoice_segment`` on the file (streaming, as ``ReSync Lip-Sync Video``):
the audio of [start_s, end_s) is replaced by the new speech with short crossfades inside the
range, the mouth there is re-generated from it and blended in and out over ``ramp_frames``;
every other frame and sample is the original's (the frames re-encoded once with H.264).
The progress bar moves per chunk, Cancel stops between chunks and leaves no output file.
"""

from __future__ import annotations

import logging
from typing import Any

from comfy_api.latest import io, ui

from ..lipsync.errors import InputError
from ..lipsync.engine.lipsync import LipSyncOptions
from ..lipsync.engine.segment import DEFAULT_CROSSFADE_MS, DEFAULT_RAMP_FRAMES, revoice_segment
from ..lipsync.types import CompositeMode, DetectorName, MissingFacePolicy, choices
from ..lipsync.media.video import probe
from . import _host
from ._common import WAV2LIP, category, input_video_problem, input_videos, mtime
from ._convert import to_waveform
from .faces import DETECTOR_TOOLTIP
from .lipsync import _should_stop, _video_file
from .model import Wav2LipModel

__all__ = ["RevoiceSegment"]

log = logging.getLogger(__name__)

TIME_MAX = 24 * 3600.0
"""Largest start/end accepted by the widgets, in seconds (a day)."""


def range_problem(start_s: Any, end_s: Any) -> str | None:
    """A sentence for the user when [start_s, end_s) is not a usable range, else None."""
    start, end = float(start_s), float(end_s)
    if start < 0:
        return f"start_s is {start:g} s; the range must start at 0 s or later."
    if end <= start:
        return (
            f"end_s ({end:g} s) must be after start_s ({start:g} s): the range to re-voice is empty. "
            "Set end_s to the time where the new speech ends."
        )
    return None


class RevoiceSegment(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        files = input_videos(_host.folder_paths().get_input_directory())
        return io.Schema(
            node_id="ReSyncRevoiceSegment",
            display_name="ReSync Re-Voice Segment",
            category=category("video"),
            description=(
                "Replace the speech of one time range of a finished video (start_s to end_s, in seconds) with new "
                "audio and re-sync the mouth there, streaming like ReSync Lip-Sync Video. Frames and audio outside "
                "the range stay as they were (the frames are re-encoded once with H.264); the audio crossfades and "
                "the new mouth fades in and out at the joins. The result keeps the video's length and frame rate "
                "and is saved as an H.264 + AAC mp4 with the workflow embedded."
            ),
            inputs=[
                io.Combo.Input(
                    "video", options=files, upload=io.UploadType.video,
                    tooltip="The finished video in ComfyUI's input folder; ignored when video_input is connected. "
                    "It is read a frame at a time, never loaded whole.",
                ),
                io.Audio.Input(
                    "audio",
                    tooltip="The new speech for the range (any AUDIO: Load Audio, a TTS node). It starts at start_s; "
                    "when longer than the range its end is cut, when shorter the rest of the range is silent.",
                ),
                WAV2LIP.Input("model", tooltip="The network from ReSync Load Wav2Lip Model."),
                io.Float.Input(
                    "start_s", default=0.0, min=0.0, max=TIME_MAX, step=0.01,
                    tooltip="Start of the range to re-voice, in seconds from the start of the video.",
                ),
                io.Float.Input(
                    "end_s", default=1.0, min=0.0, max=TIME_MAX, step=0.01,
                    tooltip="End of the range to re-voice, in seconds from the start of the video (exclusive); "
                    "must be after start_s.",
                ),
                io.Float.Input(
                    "crossfade_ms", default=DEFAULT_CROSSFADE_MS, min=0.0, max=1000.0, step=1.0,
                    tooltip="Equal-power audio crossfade at each join, in milliseconds, inside the range "
                    "(0 = hard cut, may click).",
                ),
                io.Int.Input(
                    "ramp_frames", default=DEFAULT_RAMP_FRAMES, min=0, max=100,
                    tooltip="Frames over which the new mouth fades in at the start of the range and out at its "
                    "end, so the face does not jump (0 = no fade).",
                ),
                io.Combo.Input(
                    "mode", options=choices(CompositeMode), default="mouth",
                    tooltip="mouth: only the mouth and chin change, soft edges. reference: the whole box, as the "
                    "original Wav2Lip.",
                ),
                io.Combo.Input("detector", options=choices(DetectorName), default="auto", tooltip=DETECTOR_TOOLTIP),
                io.Combo.Input(
                    "missing_face", options=choices(MissingFacePolicy), default="passthrough",
                    tooltip="Frames in the range without a face: passthrough (unchanged), hold (last box), "
                    "interpolate, or fail.",
                ),
                io.String.Input("filename_prefix", default="ReSync/revoice",
                                tooltip="Output name under ComfyUI's output folder; a counter is added."),
                io.Video.Input(
                    "video_input", optional=True,
                    tooltip="A VIDEO to use instead of the video file (streamed from its file when it has one).",
                ),
            ],
            outputs=[
                io.Video.Output(display_name="video", tooltip="The saved video with the range re-voiced."),
                io.String.Output(display_name="path", tooltip="Full path of the saved mp4."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(
        cls, video: str | None = None, start_s: float | None = None, end_s: float | None = None
    ) -> bool | str:
        if start_s is not None and end_s is not None:  # either may come from a link, checked in execute
            problem = range_problem(start_s, end_s)
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
        start_s: float = 0.0,
        end_s: float = 1.0,
        crossfade_ms: float = DEFAULT_CROSSFADE_MS,
        ramp_frames: int = DEFAULT_RAMP_FRAMES,
        mode: str = "mouth",
        detector: str = "auto",
        missing_face: str = "passthrough",
        filename_prefix: str = "ReSync/revoice",
        video_input: Any = None,
    ) -> io.NodeOutput:
        problem = range_problem(start_s, end_s)
        if problem:
            raise InputError(problem)
        opts = LipSyncOptions.of(
            mode=mode,  # type: ignore[arg-type]
            detector=detector,  # type: ignore[arg-type]
            models_dir=_host.detector_models_dir(),
            missing_face=missing_face,  # type: ignore[arg-type]
        )
        wave = to_waveform(audio)
        metadata = _host.file_metadata(cls.hidden.prompt, cls.hidden.extra_pnginfo)
        with _video_file(video, video_input) as source:
            info = probe(source)
            path, filename, subfolder = _host.save_path(filename_prefix, info.width, info.height, "mp4")
            result = revoice_segment(
                source, wave, path, model.generator(), opts,
                start=float(start_s), end=float(end_s), crossfade_ms=float(crossfade_ms),
                ramp_frames=int(ramp_frames), progress=_host.progress_bar(1), should_stop=_should_stop,
                metadata=metadata,
            )
        for warning in result.warnings:
            log.warning("ReSync Re-Voice Segment: %s", warning)
        _host.model_management().soft_empty_cache()
        saved = ui.SavedResult(filename, subfolder, io.FolderType.output)
        return io.NodeOutput(_host.video_from_file(path), path, ui=ui.PreviewVideo([saved]))
