"""What a job saw in its inputs, in one line for people (the CLI's ``-v``, the batch report).

``describe_inputs`` names the picture's size, pixel shape, rate and colour description (HDR
included), where the video's own sound starts and its holes, what placing the voice did, and who
was followed as the speaker. It reads only what the engine already learnt (``probe``, the audio
placement, the tracker's ``SpeakerReport``): nothing is decoded again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..media.aspect import display_size
from ..types import VideoInfo

__all__ = ["describe_inputs"]


def describe_inputs(info: VideoInfo, voice_notes: Sequence[str] = (), speaker: str = "") -> str:
    """One line, e.g. "talk.mp4: 1280x720, 25 fps, bt709 matrix, limited range, ... 8-bit
    (matrix assumed: untagged); its own audio starts +0.300 s after the first frame; voice: as
    decoded; speaker: the largest face at the start (frame 0: 1st from the left of 2), kept".

    ``voice_notes``: sentences from ``lipsync.media.audio.describe_placement`` for the voice;
    ``speaker``: ``SpeakerReport.describe()``, "fixed box", or "" when no face was tracked."""
    parts = [f"{Path(info.path).name}: {info.width}x{info.height}"]
    if info.sample_aspect_ratio != 1:
        shown_w, shown_h = display_size(info.width, info.height, info.sample_aspect_ratio)
        sar = info.sample_aspect_ratio
        parts[0] += f" with {sar.numerator}:{sar.denominator} pixels (shown {shown_w}x{shown_h})"
    if info.is_still:
        parts.append("a still image")
    else:
        parts.append(f"{float(info.fps):g} fps")
    if info.colour is not None:
        parts.append(info.colour.describe())
    if info.has_audio:
        own = "its own audio"
        if info.audio_start is not None and abs(info.audio_start) >= 0.0005:
            own += f" starts {info.audio_start:+.3f} s from the first frame"
        else:
            own += " starts with the picture"
        if info.audio_gaps:
            own += f", {len(info.audio_gaps)} hole{'s' if len(info.audio_gaps) > 1 else ''} in it"
        parts.append(own)
    parts.append("voice: " + ("; ".join(voice_notes) if voice_notes else "played from its first sample with the first frame"))
    if speaker:
        parts.append(f"speaker: {speaker}")
    return "; ".join(parts)
