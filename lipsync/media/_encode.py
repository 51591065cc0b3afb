"""The output side of ``lipsync.media.video``: a streaming, atomic video writer with muxed audio.

Frames are encoded the moment they arrive and the audio is encoded alongside them, so memory
stays flat however long the video is. Everything goes to a hidden temporary file next to the
final name and is renamed over it only when the file is complete: a crash, an exception or a
cancelled job never leaves a half-written video under the name the user asked for.

Encoder choices (module constants so the lead can tune them after measuring):

- H.264 (libx264) ``crf 18``, ``preset superfast`` with the macroblock tree kept on
  (``mbtree=1:rc-lookahead=10``, what ``veryfast`` uses): crf 18 is the usual "visually
  lossless" point of x264. On a CPU the encoder shares the cores with the network, so its cost
  counts: measured on the shared clips by ``bench/bench_encode.py``, this setting
  takes ~40 % less CPU than ``veryfast`` for the same PSNR against the source (46.1 vs 46.2 dB,
  50.4 vs 50.1 dB at 720p) and about the same size (+10 % / -7 %); plain ``superfast`` (no
  macroblock tree) is 2.6x larger. yuv420p (what every browser and phone plays), converted
  and tagged with the source's colour description (``like``; see ``lipsync.media.colour``),
  else BT.709 limited range; the source's sample aspect ratio is kept.
- AAC at 96 kb/s per channel (192 kb/s stereo): transparent for speech and music.
- ``lossless=True``: FFV1 in ``bgr0`` (FFV1's default yuv420p would round colours) with FLAC
  audio in Matroska; the frames read back bit-exact. Matroska as PyAV 18 writes it cannot carry
  a sample aspect ratio (neither the container's display size nor FFV1's own field comes out),
  so frames of non-square-pixel sources are resampled to square pixels there
  (``lipsync.media.aspect``); ``lipsync.media.video.picture_changes`` says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO

import av
import cv2
import numpy as np

from . import atomic
from .atomic import TEMP_MARKER, cleanup_stale_temp_files
from .atomic import write_error as _output_error
from . import colour
from .aspect import display_size, to_square_pixels
from .formats import OUTPUT_CONTAINERS, frame_rate
from ..errors import AudioError, OutputError
from ._encode_audio import _AudioPump, _AudioTrack, _FileAudio, _waveform_pump
from ..types import Frame, VideoInfo, Waveform

__all__ = ["VideoWriter", "cleanup_stale_temp_files"]

DEFAULT_CRF = 18
DEFAULT_PRESET = "superfast"
DEFAULT_X264_PARAMS = "mbtree=1:rc-lookahead=10"
"""Added to the preset (x264's ``key=value:…`` syntax); see the module docstring."""
LOSSLESS_PIX_FMT = "bgr0"


def _bgr0_frame(image: Frame) -> av.VideoFrame:
    """RGB uint8 ``image`` (H, W, 3) as a ``bgr0`` frame for FFV1: the bytes reordered by OpenCV
    straight into the frame's buffer (exact; a tenth of the cost of PyAV's copy plus swscale)."""
    height, width = image.shape[:2]
    frame = av.VideoFrame(width, height, LOSSLESS_PIX_FMT)
    plane = frame.planes[0]
    pixels = np.frombuffer(plane, np.uint8).reshape(height, plane.line_size)[:, : 4 * width]
    cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGRA, dst=pixels.reshape(height, width, 4))
    return frame


def _reserve_temp(final: Path) -> tuple[Path, IO[bytes]]:
    """Create the parent folder and an exclusive temporary file beside ``final``, locked
    (``atomic.reserve_temp``), with the writer's sentences for what can fail."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        is_folder = final.is_dir()
    except OSError as exc:
        raise _output_error(final.parent, "creating the output folder", exc) from exc
    if is_folder:
        raise OutputError(f"Cannot write {final}: a folder has that name; choose another file name.")
    try:
        return atomic.reserve_temp(final)
    except OSError as exc:
        raise _output_error(final, "creating a temporary file for", exc) from exc


class VideoWriter:
    """Writes frames to ``path`` as they come, with the audio muxed in sync; atomic on close.

    ``path`` ends in .mp4/.m4v/.mov (H.264 + AAC) or .mkv (H.264 + AAC, or FFV1 + FLAC with
    ``lossless=True``). ``audio`` is a Waveform, an audio/video file path (stream-decoded) or
    None; it keeps its own sample rate and channels (rates AAC cannot store become 48 kHz),
    starts ``audio_start`` seconds into the source (negative: that much silence first) and is
    cut or padded with silence to exactly ``frames / fps`` seconds.

    H.264 in yuv420p needs even sizes: an odd width or height gets one more column/row that
    repeats the edge, so a 65x47 input is stored (and read back) as 66x48. FFV1 keeps any size.
    ``metadata`` goes into the container's tags (MP4/MOV: as ``use_metadata_tags`` keys, the
    way ComfyUI stores ``prompt``/``workflow`` so a dropped video restores its graph).
    ``like``: the probed source whose frames these are (from ``iter_frames``); the output gets
    its colour description (``lipsync.media.colour.output_colour``: the same matrix, range,
    primaries and transfer; HDR sources were tone-mapped to SDR BT.709) and its sample aspect
    ratio (FFV1: resampled to square pixels instead). None: frames are sRGB/BT.709 with square
    pixels (ComfyUI images), written BT.709 limited range.
    Use as a context manager: an exception in the block discards everything.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: Fraction | int | float,
        *,
        audio: Waveform | str | os.PathLike[str] | None = None,
        audio_start: float = 0.0,
        lossless: bool = False,
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
        x264_params: str | None = DEFAULT_X264_PARAMS,
        metadata: Mapping[str, str] | None = None,
        like: VideoInfo | None = None,
    ) -> None:
        self.path = Path(path)
        self.colour = colour.output_colour(like.colour) if like is not None else colour.SDR_BT709
        self.sample_aspect_ratio = like.sample_aspect_ratio if like is not None else Fraction(1)
        self._metadata = dict(metadata or {})
        self.fps = frame_rate(fps)
        self._format = OUTPUT_CONTAINERS.get(self.path.suffix.lower())
        if self._format is None or (lossless and self._format != "matroska"):
            wanted = ".mkv" if lossless else ".mp4 (or .mov/.mkv)"
            raise OutputError(f"Cannot write {self.path}: use a {wanted} file name for this output.")
        self._lossless, self._crf, self._preset, self._x264_params = lossless, crf, preset, x264_params
        self._container: av.container.OutputContainer | None = None
        self._video: av.VideoStream | None = None
        self._audio: _AudioTrack | None = None
        self._shape: tuple[int, ...] | None = None
        self._count = 0
        self._done = False
        self._temp, self._lock = _reserve_temp(self.path)
        cleanup_stale_temp_files(self.path.parent)
        self._file_audio: _FileAudio | None = None
        self._pump: _AudioPump | None = None
        try:
            self._pump = self._make_pump(audio, audio_start)
        except BaseException:
            self.abort()
            raise

    @property
    def frames_written(self) -> int:
        return self._count

    def _make_pump(self, audio: Waveform | str | os.PathLike[str] | None, start: float) -> _AudioPump | None:
        codec = "flac" if self._lossless else "aac"
        if audio is None:
            return None
        if isinstance(audio, Waveform):
            return _waveform_pump(audio, codec, start)
        self._file_audio = _FileAudio(os.fspath(audio), codec, start)
        return self._file_audio.pump

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _open(self, height: int, width: int) -> None:
        """Open the container once the first frame gives the size (streams need it up front)."""
        options = {}
        if self._format in ("mp4", "mov"):
            options["movflags"] = "+faststart+use_metadata_tags" if self._metadata else "+faststart"
        self._container = av.open(str(self._temp), "w", format=self._format, options=options)
        for key, value in self._metadata.items():
            self._container.metadata[key] = value
        if self._lossless:
            stream = self._container.add_stream("ffv1", rate=self.fps)
            stream.pix_fmt = LOSSLESS_PIX_FMT
            colour.tag(stream.codec_context, self.colour, rgb=True)
            width, height = display_size(width, height, self.sample_aspect_ratio)  # see _to_av
        else:
            opts = {"crf": str(self._crf), "preset": self._preset}
            if self._x264_params:
                opts["x264-params"] = self._x264_params
            stream = self._container.add_stream("libx264", rate=self.fps, options=opts)
            stream.pix_fmt = "yuv420p"
            colour.tag(stream.codec_context, self.colour)
            if self.sample_aspect_ratio != 1:
                stream.codec_context.sample_aspect_ratio = self.sample_aspect_ratio
            width, height = width + width % 2, height + height % 2  # yuv420p: even sizes only (class docstring)
        stream.width, stream.height = width, height
        stream.codec_context.time_base = 1 / self.fps
        self._video = stream
        if self._pump is not None:
            self._audio = _AudioTrack(self._container, self._pump, self._lossless)

    def _to_av(self, image: Frame) -> av.VideoFrame:
        if self._lossless:
            if self.sample_aspect_ratio != 1:  # Matroska from PyAV cannot carry the SAR (module docstring)
                image = to_square_pixels(image, self.sample_aspect_ratio)
            return _bgr0_frame(image)
        pad = ((0, image.shape[0] % 2), (0, image.shape[1] % 2), (0, 0))
        if pad[0][1] or pad[1][1]:
            image = np.pad(image, pad, mode="edge")
        return colour.from_rgb(image, self.colour)

    def _audio_target(self, final: bool) -> int:
        """Samples that cover the frames written so far (rounded at the end, floored before)."""
        assert self._audio is not None
        exact = Fraction(self._count) * self._audio.pump.rate / self.fps
        return round(exact) if final else int(exact)

    def write(self, frame: Frame) -> None:
        """Encode one RGB uint8 (H, W, 3) frame; the first frame fixes the size. The frame is
        copied (into the encoder's own buffer) before this returns, so the caller may reuse it."""
        if self._done:
            raise RuntimeError(f"VideoWriter for {self.path} is already closed")
        image = np.asarray(frame)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"frames must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
        if self._shape is not None and image.shape != self._shape:
            raise ValueError(f"frame size changed from {self._shape} to {image.shape}")
        try:
            if self._container is None:
                self._shape = image.shape
                self._open(image.shape[0], image.shape[1])
            assert self._container is not None and self._video is not None
            video_frame = self._to_av(image)
            video_frame.pts = self._count
            self._container.mux(self._video.encode(video_frame))
            self._count += 1
            if self._audio is not None:
                self._audio.fill_to(self._audio_target(final=False), self._container)
        except AudioError:
            self.abort()
            raise
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise _output_error(self.path, "writing", exc) from exc

    def close(self) -> None:
        """Flush the encoders, finish the file and rename it to its final name."""
        if self._done:
            return
        if self._container is None:
            self.abort()
            raise OutputError(f"No frames were written to {self.path}; nothing to save.")
        try:
            if self._audio is not None:
                self._audio.fill_to(self._audio_target(final=True), self._container, final=True)
            assert self._video is not None
            self._container.mux(self._video.encode(None))
            self._container.close()
            self._container = None
            atomic.commit(self._temp, self.path, self._lock)
        except AudioError:
            self.abort()
            raise
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise _output_error(self.path, "finishing", exc) from exc
        self._done = True
        self._close_audio()

    def _close_audio(self) -> None:
        if self._file_audio is not None:
            self._file_audio.close()
            self._file_audio = None

    def abort(self) -> None:
        """Discard the output: the temporary file goes, the final name is never touched."""
        self._done = True
        if self._container is not None:
            try:
                self._container.close()
            except (av.FFmpegError, OSError):
                pass  # we are throwing the file away; a failing trailer does not matter
            self._container = None
        self._close_audio()
        atomic.discard(self._temp, self._lock)
