"""Video in and out: probe a file, stream its frames upright, write the result atomically.

Reading decodes one frame at a time with PyAV (never the whole video in memory) and yields
upright RGB uint8 frames at a constant rate: the display matrix of phone videos is applied here,
once, so every later stage sees faces the right way up, and variable-frame-rate recordings are
put on the rate ``probe`` reports by their timestamps (see ``_constant_rate``). Still images
(.png .jpg .jpeg .webp .bmp) are videos of one frame. Every failure to read becomes a
``VideoError`` whose one sentence names the file, what is wrong with it and what to do;
FFmpeg's own exception is chained, not shown.

Writing lives in ``lipsync.media._encode`` (``VideoWriter``) and is re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from ._encode import DEFAULT_CRF, DEFAULT_PRESET, VideoWriter
from .atomic import TEMP_MARKER, cleanup_stale_temp_files
from .formats import STILL_SUFFIXES, frame_rate, nominal_rate
from . import _seek, colour
from ._audio_timeline import header_report
from .aspect import sample_aspect_ratio, to_square_pixels
from ..errors import VideoError
from ..types import ColourInfo, Frame, VideoInfo

__all__ = [
    "DEFAULT_CRF",
    "DEFAULT_PRESET",
    "DEFAULT_STILL_FPS",
    "STILL_SUFFIXES",
    "TEMP_MARKER",
    "VideoWriter",
    "cleanup_stale_temp_files",
    "index_keyframes",
    "is_still_image",
    "iter_frames",
    "indexed_frame_count",
    "picture_changes",
    "probe",
]

DEFAULT_STILL_FPS = Fraction(25)
STILL_COLOUR = ColourInfo(matrix="gbr", range="full", primaries="bt709", transfer="iec61966-2-1")
"""Still images are read as sRGB (OpenCV ignores embedded ICC profiles)."""
_REDO = "re-export or re-download it (MP4/H.264 is the safest choice)"


def is_still_image(path: str | os.PathLike[str]) -> bool:
    """True for the file types read as a one-frame video (by extension, case-insensitive)."""
    return Path(path).suffix.lower() in STILL_SUFFIXES


def _error(path: str, problem: str, advice: str) -> VideoError:
    kind = "image" if is_still_image(path) else "video"
    return VideoError(f"Cannot read the {kind} {path}: {problem}; {advice}.")


def _reason(exc: BaseException) -> str:
    """FFmpeg's short explanation without the errno and file name PyAV wraps around it."""
    return str(getattr(exc, "strerror", None) or exc)


def _check_file(path: str | os.PathLike[str]) -> str:
    """Catch the common mistakes with a precise message before FFmpeg gives a vague one."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise _error(name, "the file does not exist", "check the path and the file name")
    if os.path.isdir(name):
        raise _error(name, "it is a folder, not a file", "give the path of a video or image file")
    if os.path.getsize(name) == 0:
        raise _error(name, "the file is empty (0 bytes)", _REDO)
    return name


def _read_still(path: str) -> Frame:
    """Decode an image to RGB uint8 (H, W, 3).

    ``np.fromfile`` + ``imdecode`` work with non-ASCII paths on Windows, unlike ``imread``.
    ``IMREAD_COLOR`` (not ``IMREAD_UNCHANGED``) because it applies the EXIF orientation of
    phone photos, and it also turns grey, palette, alpha (dropped, like ComfyUI's LoadImage)
    and 16-bit images into 8-bit BGR for us.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except OSError as exc:
        raise _error(path, f"the file cannot be read ({exc.strerror})", "check its permissions") from exc
    except cv2.error as exc:
        raise _error(path, "OpenCV cannot decode this image", "re-save it as PNG or JPEG") from exc
    if image is None:
        problem = "it is not an image OpenCV can decode (corrupt or another format)"
        raise _error(path, problem, "re-save it as PNG or JPEG")
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def _open(path: str) -> av.container.InputContainer:
    try:
        return av.open(path, metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as exc:
        problem = f"FFmpeg cannot open it ({_reason(exc)}), so it is corrupt, incomplete or not a video"
        raise _error(path, problem, _REDO) from exc


def _video_stream(container: av.container.InputContainer, path: str) -> av.VideoStream:
    """The first real video stream (cover art in music files does not count)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    if not container.streams:  # typically a damaged header: the streams could not be read
        raise _error(path, "FFmpeg finds no stream in it, so it is damaged or not a video", _REDO)
    what = "audio but no video" if container.streams.audio else "no video stream"
    raise _error(path, f"the file contains {what}", "give a video or an image of the face")


def _decoded(container: av.container.InputContainer, stream: av.VideoStream, path: str) -> Iterator[av.VideoFrame]:
    """Every frame of ``stream`` in display order; a damaged or cut-off file raises VideoError.

    FFmpeg does not always raise on a truncated file: with threaded decoding a half packet
    decodes silently, and a cut on a packet boundary just ends the stream. So two more checks:
    the last packet flagged corrupt (a short read), and, for MP4/MOV whose sample table lists
    every frame, fewer packets than listed. The demuxer's index is used rather than
    ``stream.frames``: an edit list (a trimmed clip) drops entries from the index but not from
    ``frames``, and would look truncated.
    """
    entries = getattr(stream, "index_entries", None)  # not in older PyAV: check skipped
    declared = len(entries) if entries is not None and "mp4" in container.format.name else 0
    packets = decoded = 0
    last_corrupt = False
    try:
        for packet in container.demux(stream):
            if packet.size:
                packets += 1
                last_corrupt = packet.is_corrupt
            for frame in packet.decode():
                decoded += 1
                yield frame
    except av.FFmpegError as exc:
        problem = f"decoding failed after {decoded} frames ({_reason(exc)}), so the file is damaged or cut off"
        raise _error(path, problem, _REDO) from exc
    if packets < declared:
        problem = f"the file ends after {packets} of the {declared} frames its header lists (it is cut off)"
        raise _error(path, problem, _REDO)
    if last_corrupt:
        raise _error(path, f"the file is cut off in the middle of frame {packets}", _REDO)


def _frame_rate(stream: av.VideoStream) -> Fraction:
    """The exact rate (e.g. 30000/1001): the average rate, else FFmpeg's guess, else 25."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return nominal_rate(Fraction(rate))
    return DEFAULT_STILL_FPS


_MAX_GAP_S = 60
"""A timestamp leap longer than this is a broken timestamp, not a pause in a recording."""


def _constant_rate(
    frames: Iterator[av.VideoFrame], rate: Fraction, recorder: _seek.Recorder | None = None
) -> Iterator[av.VideoFrame]:
    """The frames at a constant ``rate``, placed by their timestamps (FFmpeg's ``-fps_mode cfr``).

    Phones and screen recorders write variable-frame-rate video: the rate dips in low light or
    when nothing moves. The pipeline shows frame k at k / rate, so taking the frames in decode
    order would play such parts too fast and shift everything after them. Instead, slot k (time
    k / rate from the first frame) shows the first frame whose timestamp rounds to k, else the
    one before: a dip repeats the held frame, a burst drops the extra frames, so the motion keeps
    its speed and the video its duration. A constant-rate file passes unchanged. Frames without
    a timestamp, with the held frame's timestamp, or whose timestamp goes back or leaps more
    than a minute (broken files) are taken in decode order, one slot each. ``recorder`` learns
    which slot each frame took (see ``lipsync.media._seek``).
    """
    held: av.VideoFrame | None = None
    held_time: Fraction | None = None
    origin = Fraction(0)
    slot = 0  # the slot ``held`` will fill
    try:
        for frame in frames:
            time = Fraction(frame.pts) * frame.time_base if frame.pts is not None and frame.time_base else None
            if held is None:
                held, held_time, origin = frame, time, time or Fraction(0)
                if recorder is not None:
                    recorder.slot(0, frame, time, True)
                continue
            target = round((time - origin) * rate) if time is not None else None
            regular = target == slot + 1
            if target is not None and target == slot and time != held_time:
                if recorder is not None:
                    recorder.slot(slot, frame, time, False)
                continue  # a second frame in the same slot: dropped
            if target is None or time == held_time or not slot < target <= slot + _MAX_GAP_S * rate:
                target = slot + 1  # no usable timestamp: next slot, the clock restarts here
                regular = False
                if time is not None:
                    origin = time - target / rate
            for _ in range(target - slot):
                yield held
            held, held_time, slot = frame, time, target
            if recorder is not None:
                recorder.slot(slot, frame, time, regular)
        if held is not None:
            yield held
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()


def _tag_seconds(value: str | None) -> float:
    """Matroska's per-stream ``DURATION`` tag ("HH:MM:SS.nnnnnnnnn") in seconds, 0 if absent."""
    try:
        hours, minutes, seconds = (value or "").split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return 0.0


def _duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    """The video stream's own duration when known; the container's (which may include a
    longer audio track) only as a last resort."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tagged = _tag_seconds(stream.metadata.get("DURATION"))
    if tagged > 0:
        return tagged
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def _clockwise(rotation: int) -> int:
    """PyAV's counter-clockwise display angle as the clockwise 0/90/180/270 of the old tag."""
    return (-round(rotation / 90) * 90) % 360


def _upright(rgb: np.ndarray, rotation: int) -> Frame:
    """Apply the display rotation (counter-clockwise degrees, as ``VideoFrame.rotation``).

    Flips in the display matrix (mirrored front cameras) are rare and are not applied.
    """
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns) if turns else rgb)


def probe(path: str | os.PathLike[str], *, fps: Fraction | int = DEFAULT_STILL_FPS) -> VideoInfo:
    """Read what a video or still image holds, decoding at most its first frame.

    The first frame is decoded because FFmpeg only hands the rotation and the colour tags to
    PyAV on decoded frames, and it proves the file is readable early. ``rotation`` is the
    clockwise turn (0/90/180/270, the old ``rotate`` tag) that makes the stored frames upright;
    ``width``, ``height`` and ``sample_aspect_ratio`` are after it. ``colour`` is the file's
    colour description, untagged fields assumed as players do (``lipsync.media.colour.describe``).
    ``fps`` only applies to still images.
    """
    name = _check_file(path)
    if is_still_image(name):
        image = _read_still(name)
        rate = frame_rate(fps)
        return VideoInfo(
            path=name, width=image.shape[1], height=image.shape[0], fps=rate, frame_count=1,
            duration=float(1 / rate), codec=Path(name).suffix.lower().lstrip("."), is_still=True,
            colour=STILL_COLOUR,
        )
    with _open(name) as container:
        stream = _video_stream(container, name)
        rate = _frame_rate(stream)
        duration = _duration(container, stream)
        frames = _decoded(container, stream, name)
        first = next(frames, None)
        frames.close()
        if first is None:
            raise _error(name, "it contains no decodable video frame", _REDO)
        count = stream.frames or round(duration * rate)
        rotation = _clockwise(first.rotation)
        width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        audio_start, audio_gaps = header_report(container)
        sar = _stored_sar(stream)
        return VideoInfo(
            path=name, width=width, height=height, fps=rate, frame_count=int(count),
            duration=duration or float(count / rate), rotation=rotation,
            has_audio=bool(container.streams.audio), audio_start=audio_start, audio_gaps=audio_gaps,
            codec=stream.codec_context.name, is_still=False,
            sample_aspect_ratio=1 / sar if rotation in (90, 270) else sar, colour=colour.describe(first),
        )


def _stored_sar(stream: av.VideoStream) -> Fraction:
    """The stream's sample aspect ratio (the container's, else the codec's), before rotation."""
    return sample_aspect_ratio(stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio)


def picture_changes(info: VideoInfo, *, lossless: bool = False) -> list[str]:
    """Sentences (for warnings) naming what an output written from ``info``'s frames with
    ``VideoWriter(..., like=info)`` cannot keep of the source's picture: HDR tone-mapped to SDR,
    more than 8 bits, an unsupported colour matrix, non-square pixels resampled (lossless FFV1).
    Empty when the output shows the same picture."""
    notes = colour.changes(info.colour)
    if lossless and info.sample_aspect_ratio != 1:
        notes.append(
            f"its pixels are not square (sample aspect ratio {info.sample_aspect_ratio}); the lossless .mkv cannot "
            "carry that, so its frames were resampled to square pixels (the .mp4 output keeps them as they are)"
        )
    return [f"{Path(info.path).name}: {note}." for note in notes]
def index_keyframes(path: str | os.PathLike[str]) -> bool:
    """Learn where ``path``'s keyframes are by reading its packets (no decoding: seconds for hours
    of video), so that ``iter_frames(path, skip_first_frames=k)`` in this process starts decoding
    at the keyframe before frame k instead of the first frame. True when learnt; False for a
    still image or a file whose timestamps are irregular (variable rate, broken): those are read
    from the start, exactly as before. A cluster worker calls this before rendering a frame range.
    """
    name = _check_file(path)
    if is_still_image(name):
        return False
    if _seek.lookup(name) is not None:
        return True
    with _open(name) as container:
        stream = _video_stream(container, name)
        first = next(_decoded(container, stream, name), None)
        if first is None or first.pts is None or first.time_base is None:
            return False
        origin, rate = Fraction(first.pts) * first.time_base, _frame_rate(stream)
    with _open(name) as container:
        return _seek.scan(name, container, _video_stream(container, name), rate, origin)


def indexed_frame_count(path: str | os.PathLike[str]) -> int | None:
    """How many frames ``path`` has on its constant-rate timeline, when this process knows its
    keyframes (see ``index_keyframes``); None otherwise."""
    timeline = _seek.lookup(os.fspath(path))
    return None if timeline is None else timeline.covered


def _check_selection(frame_load_cap: int, skip_first_frames: int, select_every_nth: int) -> None:
    if frame_load_cap < 0 or skip_first_frames < 0 or select_every_nth < 1:
        raise ValueError(
            "frame_load_cap and skip_first_frames must be >= 0 and select_every_nth >= 1, got "
            f"{frame_load_cap}, {skip_first_frames}, {select_every_nth}"
        )


def iter_frames(
    path: str | os.PathLike[str],
    *,
    frame_load_cap: int = 0,
    skip_first_frames: int = 0,
    select_every_nth: int = 1,
    square_pixels: bool = False,
) -> Iterator[Frame]:
    """Yield upright RGB uint8 frames one at a time, at ``probe(path).fps`` (VideoHelperSuite's
    selection rules; a variable-frame-rate file is first put on that constant rate).

    The RGB is what a player shows: decoded with the file's colour matrix and range (untagged:
    as players assume), HDR tone-mapped to SDR BT.709 (``lipsync.media.colour``). Frames keep
    their stored pixels (``probe(path).width`` x ``height``); ``square_pixels=True`` resamples
    non-square-pixel video to the displayed shape (``lipsync.media.aspect.display_size``).

    Skip the first ``skip_first_frames`` frames, then keep every ``select_every_nth``-th one,
    and stop after ``frame_load_cap`` kept frames (0: no cap). Decoding stops as soon as the
    cap is reached, so a short preview of a long video is cheap. A still image is one frame.
    """
    _check_selection(frame_load_cap, skip_first_frames, select_every_nth)
    name = _check_file(path)
    if is_still_image(name):
        if skip_first_frames == 0:
            yield _read_still(name)
        return
    kept = 0
    sar = probe(name).sample_aspect_ratio if square_pixels else Fraction(1)
    described: ColourInfo | None = None
    frames = _source_frames(name, skip_first_frames)
    try:
        for index, frame in frames:
            if (index - skip_first_frames) % select_every_nth:
                continue
            if described is None:
                described = colour.describe(frame)
            image = _upright(colour.to_rgb(frame, described), frame.rotation)
            yield to_square_pixels(image, sar) if sar != 1 else image
            kept += 1
            if kept == frame_load_cap:
                return
    finally:
        frames.close()


def _source_frames(name: str, skip: int) -> Iterator[tuple[int, av.VideoFrame]]:
    """(index, frame) of the source from index ``skip`` on, at the constant rate: decoded from
    the keyframe before ``skip`` when an earlier pass learnt where that is (``lipsync.media._seek``),
    else from the first frame (recording what it learns)."""
    first = skip
    timeline = _seek.lookup(name) if skip else None
    start = timeline.start_for(skip) if timeline is not None else None
    if timeline is not None and start is not None:
        with _open(name) as container:
            stream = _video_stream(container, name)
            stream.thread_type = "AUTO"
            try:
                for index, frame in _seek.jump(container, stream, timeline, start, skip):
                    first = index + 1
                    yield index, frame
                return
            except _seek.Drift:
                pass  # read the rest the slow, exact way below
    with _open(name) as container:
        stream = _video_stream(container, name)
        stream.thread_type = "AUTO"
        rate = _frame_rate(stream)
        recorder = _seek.Recorder(name, rate)
        frames = _constant_rate(_decoded(container, stream, name), rate, recorder)
        try:
            for index, frame in enumerate(frames):
                if index >= first:
                    yield index, frame
        finally:
            frames.close()
            recorder.save()
