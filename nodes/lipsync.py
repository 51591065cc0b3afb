"""ReSync Lip-Sync Video: the whole job in one node, streaming, for inputs of any length.

It runs the library's ``lipsync_video`` on the file: frames are decoded, detected, generated,
composited and encoded a chunk at a time, so memory does not grow with the video's length (a
test runs a minute of 720p in the same RAM as twelve seconds); nothing becomes an IMAGE batch.
Only the AUDIO input is held whole (an hour of 48 kHz stereo is 1.4 GB as the host's float32).
The progress bar moves per chunk, Cancel stops between chunks and leaves no output file.
"""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io, ui

from ..lipsync.engine.lipsync import lipsync_video
from ..lipsync.media.video import probe
from ..lipsync.options import (
    CompositeOptions,
    FaceOptions,
    RestoreOptions,
    RunOptions,
    SourceOptions,
    SyncOptions,
)
from . import _host
from ._common import WAV2LIP, category, fps_problem, input_video_problem, input_videos, mtime
from ._convert import to_waveform
from ._files import video_file
from ._options import Uses, lipsync_options
from .faces import FACE_WIDGETS
from .model import Wav2LipModel
from .restore import RESTORE_MODEL_TOOLTIP, placed_restorer
from .restore import model_names as restore_model_names

__all__ = ["JOB_LEFT", "JOB_WIDGETS", "LipSyncVideo"]

JOB_LEFT = {
    "model": "the network comes from ReSync Load Wav2Lip Model or Load MuseTalk Model, its device and precision "
    "from the host's model manager, the detectors' models folder from the host's folders",
    "encode": "the nodes save H.264 + AAC mp4 files the host previews; lossless FFV1 .mkv is the command line's",
    "chunk_batches": "speed only, never the result; the default suits the host",
    "overlap": "speed only, never the result; the default suits the host",
}
"""What every node that runs whole lip-sync jobs leaves to others, and why."""

JOB_WIDGETS = {
    **FACE_WIDGETS,
    "mode": {
        "tooltip": "mouth: only the mouth and chin change, soft edges. reference: the whole box, as the original "
        "Wav2Lip."
    },
    "color_match": {
        "tooltip": "mouth mode: lab matches the generated region's colours to the original (mean/std in L*a*b* "
        "under the mask). ~1 ms per frame."
    },
    "blend": {
        "tooltip": "mouth mode: feather (soft alpha edge) or seamless (Poisson cloning, then the soft edge; "
        "~5-20 ms per frame)."
    },
    "restore_model": {"options": restore_model_names, "tooltip": RESTORE_MODEL_TOOLTIP},
    "frame_load_cap": {"max": 10_000_000},
    "skip_first_frames": {"max": 10_000_000},
    "select_every_nth": {"max": 1000},
}
"""Widget overrides shared by the nodes that run whole lip-sync jobs (Lip-Sync Video, Re-Voice
Segment, Lip-Sync Batch): tooltips that say more than the option's help, the host's restorers."""


class LipSyncVideo(io.ComfyNode):
    USES = Uses(
        groups=(SourceOptions, SyncOptions, FaceOptions, CompositeOptions, RestoreOptions, RunOptions),
        left=JOB_LEFT,
        widgets=JOB_WIDGETS,
        job=True,
    )

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
                WAV2LIP.Input("model", tooltip="The network from ReSync Load Wav2Lip Model or ReSync Load MuseTalk "
                              "Model."),
                *cls.USES.inputs(CompositeOptions, ("mode", "feather", "color_match", "blend")),
                *cls.USES.inputs(RestoreOptions),
                *cls.USES.inputs(FaceOptions, (
                    "detector", "missing_face", "face", "face_index", "pad_bottom", "fixed_box", "smoothing",
                )),
                *cls.USES.inputs(SourceOptions, ("length_policy",)),
                *cls.USES.inputs(SyncOptions),
                *cls.USES.inputs(SourceOptions, ("fps",)),
                *cls.USES.inputs(RunOptions, ("batch_size",)),
                *cls.USES.inputs(FaceOptions, ("detect_every",)),
                io.String.Input("filename_prefix", default="ReSync/lipsync",
                                tooltip="Output name under ComfyUI's output folder; a counter is added."),
                io.Video.Input(
                    "video_input", optional=True,
                    tooltip="A VIDEO to use instead of the video file (streamed from its file when it has one).",
                ),
                # added later: optional, after every older input, so saved workflows keep their values
                *cls.USES.inputs(FaceOptions, ("pad_top", "pad_left", "pad_right", "smooth_window"), optional=True),
                *cls.USES.inputs(CompositeOptions, ("resample",), optional=True),
                *cls.USES.inputs(SourceOptions, ("frame_load_cap", "skip_first_frames", "select_every_nth"),
                                 optional=True),
                *cls.USES.inputs(FaceOptions, ("face_point",), optional=True),
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
        filename_prefix: str = "ReSync/lipsync",
        video_input: Any = None,
        **settings: Any,
    ) -> io.NodeOutput:
        opts = lipsync_options(cls.USES, settings, models_dir=_host.detector_models_dir())
        restore_model = opts.restore.restore
        opts = opts.replace(restore=None)  # the host places the restorer: handed over loaded, below
        restorer = None if restore_model is None else placed_restorer(restore_model)
        wave = to_waveform(audio)
        metadata = _host.file_metadata(cls.hidden.prompt, cls.hidden.extra_pnginfo)
        with video_file(video, video_input) as source:
            info = probe(source)
            path, filename, subfolder = _host.save_path(filename_prefix, info.width, info.height, "mp4")
            lipsync_video(
                source, wave, path, model.generator(), opts,
                progress=_host.progress_bar(1), should_stop=_host.should_stop, metadata=metadata, restorer=restorer,
            )
        _host.model_management().soft_empty_cache()
        result = ui.SavedResult(filename, subfolder, io.FolderType.output)
        return io.NodeOutput(_host.video_from_file(path), path, ui=ui.PreviewVideo([result]))
