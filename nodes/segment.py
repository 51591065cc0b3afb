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
from ..lipsync.engine.segment import DEFAULT_CROSSFADE_MS, DEFAULT_RAMP_FRAMES, revoice_segment
from ..lipsync.media.video import probe
from ..lipsync.options import CompositeOptions, FaceOptions, RestoreOptions, RunOptions, SyncOptions
from . import _host
from ._common import WAV2LIP, category, input_video_problem, input_videos, mtime
from ._convert import to_waveform
from ._files import video_file
from ._options import Uses, lipsync_options
from .lipsync import JOB_LEFT, JOB_WIDGETS
from .model import Wav2LipModel
from .restore import restorer_path

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


RESTORE_TOOLTIP = (
    "A face restorer from models/facerestore_models (GFPGAN, RestoreFormer; CodeFormer with spandrel-extra-arches, "
    "non-commercial) run on each generated face of the range at 512 px, blended only inside the mouth mask. Costs "
    "a 512 px network pass per frame; the library loads it on the model's device, beside the host's own models."
)


class RevoiceSegment(io.ComfyNode):
    USES = Uses(
        groups=(SyncOptions, FaceOptions, CompositeOptions, RestoreOptions, RunOptions),
        left={
            **JOB_LEFT,
            "source": "the video keeps its length and frame rate: the library's revoice_segment takes no fps, "
            "frame selection or length policy",
        },
        widgets={
            **JOB_WIDGETS,
            "missing_face": {
                "tooltip": "Frames in the range without a face: passthrough (unchanged), hold (last box), "
                "interpolate, or fail."
            },
            "restore_model": {
                **JOB_WIDGETS["restore_model"],
                "tooltip": RESTORE_TOOLTIP,
            },
        },
        job=True,
    )

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
                WAV2LIP.Input("model", tooltip="The network from ReSync Load Wav2Lip Model or ReSync Load MuseTalk "
                              "Model."),
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
                *cls.USES.inputs(CompositeOptions, ("mode",)),
                *cls.USES.inputs(FaceOptions, ("detector", "missing_face")),
                io.String.Input("filename_prefix", default="ReSync/revoice",
                                tooltip="Output name under ComfyUI's output folder; a counter is added."),
                io.Video.Input(
                    "video_input", optional=True,
                    tooltip="A VIDEO to use instead of the video file (streamed from its file when it has one).",
                ),
                # added later: optional, after every older input, so saved workflows keep their values
                *cls.USES.inputs(CompositeOptions, ("feather", "resample", "color_match", "blend"), optional=True),
                *cls.USES.inputs(RestoreOptions, optional=True),
                *cls.USES.inputs(FaceOptions, (
                    "face", "face_index", "pads", "fixed_box", "smoothing", "smooth_window", "detect_every",
                ), optional=True),
                *cls.USES.inputs(SyncOptions, optional=True),
                *cls.USES.inputs(RunOptions, ("batch_size",), optional=True),
                *cls.USES.inputs(FaceOptions, ("face_point",), optional=True),
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
        filename_prefix: str = "ReSync/revoice",
        video_input: Any = None,
        **settings: Any,
    ) -> io.NodeOutput:
        problem = range_problem(start_s, end_s)
        if problem:
            raise InputError(problem)
        opts = lipsync_options(cls.USES, settings, models_dir=_host.detector_models_dir())
        if opts.restore.restore is not None:  # revoice_segment loads the restorer itself, from its file
            opts = opts.replace(restore=restorer_path(opts.restore.restore))
        wave = to_waveform(audio)
        metadata = _host.file_metadata(cls.hidden.prompt, cls.hidden.extra_pnginfo)
        with video_file(video, video_input) as source:
            info = probe(source)
            path, filename, subfolder = _host.save_path(filename_prefix, info.width, info.height, "mp4")
            result = revoice_segment(
                source, wave, path, model.generator(), opts,
                start=float(start_s), end=float(end_s), crossfade_ms=float(crossfade_ms),
                ramp_frames=int(ramp_frames), progress=_host.progress_bar(1), should_stop=_host.should_stop,
                metadata=metadata,
            )
        for warning in result.warnings:
            log.warning("ReSync Re-Voice Segment: %s", warning)
        _host.model_management().soft_empty_cache()
        saved = ui.SavedResult(filename, subfolder, io.FolderType.output)
        return io.NodeOutput(_host.video_from_file(path), path, ui=ui.PreviewVideo([saved]))
