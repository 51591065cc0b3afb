"""ReSync Audio To Mel: any AUDIO (core Load Audio, a TTS node, a video's track) to the model's
mel windows, one per output video frame.

The graph's length rule lives here. ``frame_count`` 0 makes the clip as long as the audio
(ceil(duration x fps) frames; the usual choice). A frame count > 0 fixes the clip's length
instead (connect Load Video's frame_count to keep the video's length): longer audio is cut,
shorter audio is padded with silence (a closed mouth). Wav2Lip Generate then maps the frames
batch onto that length with ``length_policy``.
"""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io

from ..lipsync.media.audio import frame_count_for_audio, mel_windows, melspectrogram, to_model_rate
from ..lipsync.errors import InputError
from ..lipsync.engine.graph import MelFrames
from ..lipsync.types import LengthPolicy, choices
from ._common import FPS_MAX, FPS_MIN, MEL, as_rate, category, fps_problem
from ._convert import to_waveform

__all__ = ["AudioToMel"]


class AudioToMel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ReSyncAudioToMel",
            display_name="ReSync Audio To Mel",
            category=category("audio"),
            description=(
                "Turn any AUDIO (any rate, any channels) into Wav2Lip's mel windows, one per output frame "
                "(16 kHz mono, the exact reference features). The lip-synced clip has one frame per window: "
                "frame_count 0 = as long as the audio; frame_count > 0 = exactly that many frames (the audio "
                "is cut, or padded with silence). Wav2Lip Generate fits the frames to that length with "
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
                io.Combo.Input(
                    "length_policy", options=choices(LengthPolicy), default="auto",
                    tooltip="When the clip is longer than the frames batch: loop restarts (a visible jump), "
                    "pingpong plays backwards and forwards, freeze holds the last frame, trim stops at the last "
                    "frame (the clip gets shorter). auto = trim if the frames suffice, else pingpong.",
                ),
                io.Float.Input(
                    "offset_ms", default=0.0, min=-2000.0, max=2000.0, step=5.0,
                    tooltip="Shift the sync in milliseconds: positive = the mouth moves later than the sound, "
                    "negative = earlier.",
                ),
            ],
            outputs=[
                MEL.Output(display_name="mel", tooltip="Mel windows (frames, 80, 16) plus the fps and length policy.")
            ],
        )

    @classmethod
    def validate_inputs(cls, fps: float | None = None) -> bool | str:
        return (fps_problem(fps) if fps is not None else None) or True

    @classmethod
    def execute(
        cls, audio: Any, fps: float, frame_count: int = 0, length_policy: str = "auto", offset_ms: float = 0.0
    ) -> io.NodeOutput:
        problem = fps_problem(fps)
        if problem:
            raise InputError(problem)
        if length_policy not in choices(LengthPolicy):
            allowed = ", ".join(choices(LengthPolicy))
            raise InputError(f"Unknown length policy {length_policy!r}; choose one of: {allowed}.")
        rate = as_rate(fps)
        wav16 = to_model_rate(to_waveform(audio))
        audio_frames = frame_count_for_audio(len(wav16), rate)
        count = int(frame_count) or audio_frames
        windows = mel_windows(melspectrogram(wav16), rate, count, offset_ms=float(offset_ms))
        mel = MelFrames(windows, rate, length_policy, audio_frames, float(offset_ms))  # type: ignore[arg-type]
        return io.NodeOutput(mel)
