"""ReSync Audio To Mel: any AUDIO (core Load Audio, a TTS node, a video's track) to the model's
mel windows, one per output video frame.

The graph's length rule lives here. ``frame_count`` 0 makes the clip as long as the audio
(ceil(duration x fps) frames; the usual choice). A frame count > 0 fixes the clip's length
instead (connect Load Video's frame_count to keep the video's length): longer audio is cut,
shorter audio is padded with silence (a closed mouth). ReSync Lip-Sync Generate then maps the frames
batch onto that length with ``length_policy``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from comfy_api.latest import io

from ..lipsync.media.audio import MODEL_RATE, to_model_rate
from ..lipsync.models.wav2lip.mel import frame_count_for_audio, mel_windows, melspectrogram
from ..lipsync.errors import InputError
from ..lipsync.engine.graph import MelFrames
from ..lipsync.options import SourceOptions, SyncOptions
from ._common import FPS_MAX, FPS_MIN, MEL, as_rate, category, fps_problem
from ._convert import to_waveform
from ._options import Uses, lipsync_options

__all__ = ["AudioToMel"]


class AudioToMel(io.ComfyNode):
    USES = Uses(
        groups=(SourceOptions, SyncOptions),
        left={
            "fps": "here the video's frame rate (required, from Load Video's fps), not the output-rate override "
            "where 0 means the file's",
            "frame_load_cap": "the frame selection is Load Video's; this node sees no frames",
            "skip_first_frames": "the frame selection is Load Video's; this node sees no frames",
            "select_every_nth": "the frame selection is Load Video's; this node sees no frames",
        },
        widgets={
            "length_policy": {
                "tooltip": "When the clip is longer than the frames batch: loop restarts (a visible jump), "
                "pingpong plays backwards and forwards, freeze holds the last frame, trim stops at the last "
                "frame (the clip gets shorter). auto = trim if the frames suffice, else pingpong."
            },
            "audio_offset_ms": {
                "name": "offset_ms",
                "tooltip": "Shift the sync in milliseconds: positive = the mouth moves later than the sound, "
                "negative = earlier.",
            },
        },
    )

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ReSyncAudioToMel",
            display_name="ReSync Audio To Mel",
            category=category("audio"),
            description=(
                "Turn any AUDIO (any rate, any channels) into Wav2Lip's mel windows, one per output frame "
                "(16 kHz mono, the exact reference features); the 16 kHz voice travels along, from which MuseTalk "
                "computes its whisper features in Generate. The lip-synced clip has one frame per window: "
                "frame_count 0 = as long as the audio; frame_count > 0 = exactly that many frames (the audio "
                "is cut, or padded with silence). ReSync Lip-Sync Generate fits the frames to that length with "
                "length_policy."
            ),
            inputs=[
                io.Audio.Input(
                    "audio", tooltip="The new voice: any AUDIO output (Load Audio, a TTS node, Load Video)."
                ),
                io.Float.Input(
                    "fps", default=25.0, min=FPS_MIN, max=FPS_MAX, step=0.01,
                    tooltip="Frame rate of the video (frames per second); connect Load Video's fps.",
                ),
                io.Int.Input(
                    "frame_count", default=0, min=0, max=10_000_000,
                    tooltip="Frames in the lip-synced clip: 0 = cover the whole audio (ceil(seconds x fps)); "
                    "connect Load Video's frame_count to keep the video's length instead. Cost: 5 KB per frame.",
                ),
                *cls.USES.inputs(SourceOptions, ("length_policy",)),
                *cls.USES.inputs(SyncOptions, ("audio_offset_ms",)),
            ],
            outputs=[
                MEL.Output(display_name="mel", tooltip="Mel windows (frames, 80, 16) plus the fps and length policy.")
            ],
        )

    @classmethod
    def validate_inputs(cls, fps: float | None = None) -> bool | str:
        return (fps_problem(fps) if fps is not None else None) or True

    @classmethod
    def execute(cls, audio: Any, fps: float, frame_count: int = 0, **settings: Any) -> io.NodeOutput:
        problem = fps_problem(fps)
        if problem:
            raise InputError(problem)
        opts = lipsync_options(cls.USES, settings)
        rate = as_rate(fps)
        wav16 = to_model_rate(to_waveform(audio))
        audio_frames = frame_count_for_audio(len(wav16), rate)
        count = int(frame_count) or audio_frames
        windows = mel_windows(melspectrogram(wav16), rate, count, offset_ms=opts.sync.audio_offset_ms)
        needed = math.ceil(count / rate * MODEL_RATE)  # a longer clip than the voice: silence after it
        voice = np.pad(wav16, (0, needed - len(wav16))) if needed > len(wav16) else wav16
        mel = MelFrames(windows, rate, opts.source.length_policy, audio_frames, opts.sync.audio_offset_ms,
                        wav16k=np.ascontiguousarray(voice, dtype=np.float32))
        return io.NodeOutput(mel)
