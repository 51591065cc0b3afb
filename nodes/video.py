"""ReSync Load Video and ReSync Save Video: files in, IMAGE batches out, and back to an mp4.

Load Video decodes with the library's streaming reader (upright frames, exact fps) and refuses,
before decoding anything, a load that would not fit in RAM: an IMAGE batch is float32, so one
minute of 1080p at 25 fps is about 37 GB. Its IMAGE is plain sRGB/BT.709 RGB in square pixels,
whatever the file: decoded with the file's colour matrix and range (untagged video as players
assume), HDR tone-mapped to SDR BT.709, non-square pixels (SAR) resampled to the displayed shape
(``lipsync.media.colour``, ``lipsync.media.aspect``). Save Video writes that RGB back tagged
BT.709, so a Load → Save round trip shows the same colours.

Save Video encodes H.264 + AAC with the library's atomic writer (a cancelled run leaves no file)
and embeds the graph like the host's own SaveVideo, so dropping the mp4 onto ComfyUI restores
the workflow.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from comfy_api.latest import io, ui

from ..lipsync.media.audio import load_audio
from ..lipsync.errors import InputError, VideoError
from ..lipsync.types import VideoInfo, Waveform
from ..lipsync.media.aspect import display_size
from ..lipsync.media.video import DEFAULT_CRF, VideoWriter, iter_frames, probe
from . import _host
from ._common import (
    FPS_MAX,
    FPS_MIN,
    as_rate,
    category,
    fps_problem,
    input_video_problem,
    input_videos,
    memory_problem,
    mtime,
)
from ._convert import check_images, frame_at, to_audio, to_waveform

__all__ = ["LoadVideo", "SaveVideo"]

_SILENCE_RATE = 16000
_STREAMING_HINT = (
    "Set frame_load_cap (or skip_first_frames / select_every_nth) to load less, or use "
    "ReSync Lip-Sync Video (ReSyncLipSyncVideo), which streams videos of any length in bounded memory."
)


def selected_count(total: int, frame_load_cap: int, skip_first_frames: int, select_every_nth: int) -> int:
    """How many frames the selection keeps from a video of ``total`` frames."""
    kept = max(0, math.ceil((total - skip_first_frames) / select_every_nth))
    return min(kept, frame_load_cap) if frame_load_cap else kept


def _audio_for_frames(path: str, info: VideoInfo, start_s: float, duration_s: float) -> Waveform:
    """The file's audio under the loaded frames, exactly as long as they are: placed on the file's
    timeline (silence before a late start), padded with silence where the sound ends first;
    silence when the file has none."""
    if info.has_audio:
        wave = load_audio(path)
        first = round(start_s * wave.sample_rate)
        count = round(duration_s * wave.sample_rate)
        samples = wave.samples[:, first : first + count]
        if samples.shape[1]:
            samples = np.pad(samples, ((0, 0), (0, count - samples.shape[1])))
            return Waveform(np.ascontiguousarray(samples), wave.sample_rate, wave.source)
    silent = np.zeros((1, max(1, round(duration_s * _SILENCE_RATE))), dtype=np.float32)
    return Waveform(silent, _SILENCE_RATE, f"{path} (no audio: silence)")


def _decode(path: str, expected: int, height: int, width: int, **selection: int) -> torch.Tensor:
    """Decode straight into one float32 batch (no second full copy); the header's count may be
    off, so extra frames are appended and a shortfall is cut."""
    images = torch.empty((max(expected, 1), height, width, 3), dtype=torch.float32)
    extra: list[torch.Tensor] = []
    progress = _host.progress_bar(expected)
    count = 0
    for frame in iter_frames(path, square_pixels=True, **selection):
        _host.check_interrupt()
        if frame.shape[:2] != (height, width):
            raise VideoError(
                f"Frame {count} of {path} is {frame.shape[1]}x{frame.shape[0]}, not {width}x{height}: the size "
                "changes mid-video; re-encode it at one size."
            )
        pixels = torch.from_numpy(frame).to(torch.float32).div_(255.0)
        if count < images.shape[0]:
            images[count] = pixels
        else:
            extra.append(pixels)
        count += 1
        progress(count, max(expected, count))
    if count == 0:
        skipped = selection["skip_first_frames"]
        raise VideoError(f"{path} has no frames left after skipping {skipped}; lower skip_first_frames.")
    if extra:
        return torch.cat([images, torch.stack(extra)])
    return images if count == images.shape[0] else images[:count].clone()


class LoadVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        files = input_videos(_host.folder_paths().get_input_directory())
        return io.Schema(
            node_id="ReSyncLoadVideo",
            display_name="ReSync Load Video",
            category=category("video"),
            description=(
                "Decode a video from ComfyUI's input folder into an IMAGE batch, with its audio, frame rate and "
                "frame count. IMAGE batches are float32 in RAM (1 min of 1080p at 25 fps is about 37 GB): the "
                "node estimates the memory first and refuses what would not fit. For long videos use "
                "ReSync Lip-Sync Video, which streams."
            ),
            inputs=[
                io.Combo.Input(
                    "video", options=files, upload=io.UploadType.video,
                    tooltip="Video (mp4, mov, mkv, webm, ...) or image file in ComfyUI's input folder; the upload "
                    "button puts one there. Rotated phone videos come out upright.",
                ),
                io.Int.Input(
                    "frame_load_cap", default=0, min=0, max=10_000_000,
                    tooltip="Load at most this many frames (0 = all). Cost: each frame takes width x height x 12 "
                    "bytes of RAM (1080p: 25 MB, 720p: 11 MB, 512x512: 3 MB).",
                ),
                io.Int.Input(
                    "skip_first_frames", default=0, min=0, max=10_000_000,
                    tooltip="Frames to skip at the start (they are decoded but not kept; the audio starts at the "
                    "first kept frame).",
                ),
                io.Int.Input(
                    "select_every_nth", default=1, min=1, max=1000,
                    tooltip="Keep every n-th frame (1 = all); the fps output is divided by n.",
                ),
            ],
            outputs=[
                io.Image.Output(
                    display_name="images",
                    tooltip="The frames, float32 sRGB/BT.709 RGB (frames, height, width, 3) in square pixels (HDR "
                    "video tone-mapped to SDR; non-square pixels resampled to the displayed shape).",
                ),
                io.Audio.Output(
                    display_name="audio", tooltip="The file's audio under the kept frames (silence if none)."
                ),
                io.Float.Output(display_name="fps", tooltip="Frames per second of the kept frames."),
                io.Int.Output(display_name="frame_count", tooltip="Number of frames loaded."),
            ],
        )

    @classmethod
    def validate_inputs(cls, video: str | None = None) -> bool | str:
        if video is None:
            return True
        return input_video_problem(video, _host.folder_paths().get_annotated_filepath(video)) or True

    @classmethod
    def fingerprint_inputs(cls, video: str = "", **_: Any) -> float:
        return mtime(_host.folder_paths().get_annotated_filepath(video)) if video else float("nan")

    @classmethod
    def execute(
        cls, video: str, frame_load_cap: int = 0, skip_first_frames: int = 0, select_every_nth: int = 1
    ) -> io.NodeOutput:
        path = _host.folder_paths().get_annotated_filepath(video)
        problem = input_video_problem(video, path)
        if problem:
            raise InputError(problem)
        info = probe(path)
        width, height = display_size(info.width, info.height, info.sample_aspect_ratio)
        expected = selected_count(info.frame_count, frame_load_cap, skip_first_frames, select_every_nth)
        problem = memory_problem(expected, height, width, _STREAMING_HINT)
        if problem:
            raise InputError(f"Not loading {video}: {problem}")
        images = _decode(
            path, expected, height, width, frame_load_cap=frame_load_cap,
            skip_first_frames=skip_first_frames, select_every_nth=select_every_nth,
        )
        count = int(images.shape[0])
        fps = info.fps / select_every_nth
        start = float(skip_first_frames / info.fps)
        audio = _audio_for_frames(path, info, start, float(count * select_every_nth / info.fps))
        return io.NodeOutput(images, to_audio(audio), float(fps), count)


class SaveVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ReSyncSaveVideo",
            display_name="ReSync Save Video",
            category=category("video"),
            description=(
                "Encode an IMAGE batch (and audio) as an H.264 + AAC mp4 in ComfyUI's output folder, numbered "
                "like the host's saves, with the workflow embedded (drop the mp4 onto ComfyUI to get the graph "
                "back). The audio is cut or padded with silence to the video's length. A cancelled run leaves "
                "no file."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The frames to encode, in order."),
                io.Float.Input(
                    "fps", default=25.0, min=FPS_MIN, max=FPS_MAX, step=0.01,
                    tooltip="Frames per second; connect the fps of ReSync Load Video to keep the source's rate.",
                ),
                io.String.Input(
                    "filename_prefix", default="ReSync/lipsync",
                    tooltip="Output name under ComfyUI's output folder; a counter is added (lipsync_00001_.mp4). "
                    "May contain a subfolder and %date:...% style fields.",
                ),
                io.Int.Input(
                    "crf", default=DEFAULT_CRF, min=0, max=51,
                    tooltip="H.264 quality (x264 CRF): lower is better and bigger; 18 looks lossless, 23 is "
                    "x264's default, each +6 roughly halves the size.",
                ),
                io.Audio.Input(
                    "audio", optional=True,
                    tooltip="Sound track (any rate and channels); cut or padded with silence to the video's length. "
                    "Without it the mp4 has no audio.",
                ),
            ],
            outputs=[
                io.Video.Output(display_name="video", tooltip="The saved file as a VIDEO, for core video nodes."),
                io.String.Output(display_name="path", tooltip="Full path of the saved mp4."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, fps: float | None = None) -> bool | str:
        return (fps_problem(fps) if fps is not None else None) or True

    @classmethod
    def execute(
        cls, images: torch.Tensor, fps: float, filename_prefix: str, crf: int = DEFAULT_CRF, audio: Any = None
    ) -> io.NodeOutput:
        images = check_images(images, "images")
        problem = fps_problem(fps)
        if problem:
            raise InputError(problem)
        count, height, width = (int(v) for v in images.shape[:3])
        path, filename, subfolder = _host.save_path(filename_prefix, width, height, "mp4")
        wave = to_waveform(audio) if audio is not None else None
        metadata = _host.file_metadata(cls.hidden.prompt, cls.hidden.extra_pnginfo)
        progress = _host.progress_bar(count)
        with VideoWriter(path, as_rate(fps), audio=wave, crf=int(crf), metadata=metadata) as writer:
            for index in range(count):
                _host.check_interrupt()
                writer.write(frame_at(images, index))
                progress(index + 1, count)
        result = ui.SavedResult(filename, subfolder, io.FolderType.output)
        return io.NodeOutput(_host.video_from_file(path), path, ui=ui.PreviewVideo([result]))
