"""Tests of lipsync.media.video: probing, streaming frames, still images, the atomic writer, errors.

Every input is generated in tmp_path with PyAV or OpenCV (tiny, so the file runs in seconds);
one test reads the real face clip from the shared media folder when it is there.
"""

from __future__ import annotations

import errno
import os
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import MEDIA

from lipsync.media import _encode
from lipsync.errors import AudioError, OutputError, VideoError
from lipsync.types import Waveform
from lipsync.media.video import (
    TEMP_MARKER,
    VideoWriter,
    cleanup_stale_temp_files,
    iter_frames,
    probe,
)

H, W = 48, 64
STEP = 8  # frame i is a flat grey of level i * STEP, so its index survives lossy coding


def grey(i: int, h: int = H, w: int = W) -> np.ndarray:
    return np.full((h, w, 3), i * STEP, np.uint8)


def index_of(frame: np.ndarray) -> int:
    return int(round(float(frame.mean()) / STEP))


def make_video(
    path: Path,
    n: int = 20,
    fps: Fraction = Fraction(25),
    *,
    rotation: float | None = None,
    frames: list[np.ndarray] | None = None,
    audio_rate: int | None = None,
    faststart: bool = False,
) -> Path:
    """A small H.264 mp4 (optionally with a display rotation and an AAC track) made with PyAV."""
    images = frames if frames is not None else [grey(i) for i in range(n)]
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        video.height, video.width = images[0].shape[:2]
        video.pix_fmt = "yuv420p"
        if rotation is not None:
            video.set_display_rotation(rotation)
        audio = out.add_stream("aac", rate=audio_rate, layout="mono") if audio_rate else None
        for image in images:
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(video.encode(None))
        if audio is not None:
            samples = np.zeros((1, 1024), np.float32)
            for k in range(3):
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = audio_rate, k * 1024
                out.mux(audio.encode(frame))
            out.mux(audio.encode(None))
    return path


def make_audio(path: Path, rate: int, layout: str, seconds: float, codec: str = "pcm_s16le") -> Path:
    """A tone of ``seconds`` s at ``rate`` Hz; wav (pcm) or mp3 (libmp3lame), with PyAV."""
    channels = av.AudioLayout(layout).nb_channels
    total = int(rate * seconds)
    t = np.arange(total) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        fmt = "s16" if codec == "pcm_s16le" else "fltp"
        for start in range(0, total, 1152):
            block = np.repeat(tone[None, start : start + 1152], channels, axis=0)
            if fmt == "s16":
                block = (block * 32767).astype(np.int16).T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format=fmt, layout=layout)
            frame.sample_rate, frame.pts = rate, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def decode_audio(path: Path) -> tuple[str, int, int, np.ndarray, float]:
    """(codec, rate, channels, samples (channels, n), video duration s) of a written file."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        codec, rate = stream.codec_context.name, stream.rate
        channels = stream.codec_context.layout.nb_channels
        assert stream.start_time in (0, None)
        blocks = [f.to_ndarray().astype(np.float32) for f in container.decode(stream)]
    info = probe(path)
    samples = np.concatenate([b if b.shape[0] == channels else b.reshape(-1, channels).T for b in blocks], axis=1)
    return codec, rate, channels, samples, info.duration


def tone_wave(rate: int, channels: int, seconds: float, silent_until: float = 0.0) -> Waveform:
    t = np.arange(int(rate * seconds)) / rate
    mono = 0.5 * np.sin(2 * np.pi * 440 * t) * (t >= silent_until)
    return Waveform(np.repeat(mono[None], channels, axis=0).astype(np.float32), rate)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if TEMP_MARKER in p.name)


# --- probe -------------------------------------------------------------------------------


@pytest.mark.parametrize("fps", [Fraction(25), Fraction(30000, 1001), Fraction(24000, 1001)])
def test_probe_exact_fps_count_duration(tmp_path: Path, fps: Fraction) -> None:
    info = probe(make_video(tmp_path / "v.mp4", n=12, fps=fps))
    assert info.fps == fps and isinstance(info.fps, Fraction)
    assert info.frame_count == 12
    assert info.duration == pytest.approx(float(12 / fps), abs=1e-3)
    assert (info.width, info.height, info.rotation) == (W, H, 0)
    assert info.codec == "h264" and not info.has_audio and not info.is_still


def test_probe_has_audio(tmp_path: Path) -> None:
    assert probe(make_video(tmp_path / "a.mp4", n=5, audio_rate=44100)).has_audio


def test_probe_and_decode_real_face_clip() -> None:
    clip = MEDIA / "astronaut_closeup_5s_silent.mp4"
    if not clip.is_file():
        pytest.skip(f"shared media not found at {clip} (set LIPSYNC_SHARED)")
    info = probe(clip)
    assert (info.width, info.height, info.fps, info.frame_count) == (512, 512, Fraction(25), 125)
    assert info.duration == pytest.approx(5.0, abs=0.05) and info.codec == "h264" and not info.has_audio
    frames = list(iter_frames(clip, frame_load_cap=3, skip_first_frames=100))
    assert len(frames) == 3 and all(f.shape == (512, 512, 3) and f.dtype == np.uint8 for f in frames)


# --- frame selection ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cap", "skip", "nth", "expected"),
    [
        (0, 0, 1, list(range(30))),
        (5, 0, 1, [0, 1, 2, 3, 4]),
        (0, 25, 1, [25, 26, 27, 28, 29]),
        (5, 3, 4, [3, 7, 11, 15, 19]),
        (0, 20, 3, [20, 23, 26, 29]),
        (100, 28, 1, [28, 29]),
        (0, 40, 1, []),
    ],
)
def test_iter_frames_selection(tmp_path: Path, cap: int, skip: int, nth: int, expected: list[int]) -> None:
    path = make_video(tmp_path / "v.mp4", n=30)
    frames = list(iter_frames(path, frame_load_cap=cap, skip_first_frames=skip, select_every_nth=nth))
    assert [index_of(f) for f in frames] == expected
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 and f.flags.c_contiguous for f in frames)


def test_iter_frames_rejects_bad_selection(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        list(iter_frames(make_video(tmp_path / "v.mp4", n=2), select_every_nth=0))


# --- rotation ----------------------------------------------------------------------------


def marked_frame() -> np.ndarray:
    """Landscape frame, white block in the top-left corner (so any turn is visible)."""
    image = np.zeros((H, W, 3), np.uint8)
    image[: H // 2, : W // 4] = 255
    return image


@pytest.mark.parametrize(("ccw", "clockwise", "turn"), [(-90, 90, -1), (90, 270, 1), (180, 180, 2)])
@pytest.mark.skipif(
    not hasattr(av.video.stream.VideoStream, "set_display_rotation"), reason="this PyAV cannot write a display matrix"
)
def test_display_rotation_is_applied(tmp_path: Path, ccw: int, clockwise: int, turn: int) -> None:
    # PyAV 18 writes the display matrix (set_display_rotation takes counter-clockwise degrees,
    # the sign VideoFrame.rotation reads back); a phone's "rotate=90" is ccw=-90.
    path = make_video(tmp_path / "r.mp4", frames=[marked_frame()] * 3, rotation=ccw)
    info = probe(path)
    assert info.rotation == clockwise
    assert (info.width, info.height) == ((H, W) if clockwise in (90, 270) else (W, H))
    frame = next(iter_frames(path))
    expected = np.rot90(marked_frame(), turn)
    assert frame.shape == expected.shape and frame.flags.c_contiguous
    assert np.abs(frame.astype(int) - expected).mean() < 8


# --- pixel formats and still images ------------------------------------------------------


@pytest.mark.parametrize(("codec", "pix_fmt", "suffix"), [("ffv1", "gray", ".mkv"), ("png", "rgba", ".mov")])
def test_grey_and_alpha_videos_become_rgb(tmp_path: Path, codec: str, pix_fmt: str, suffix: str) -> None:
    path = tmp_path / f"v{suffix}"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        for i in range(3):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(grey(i + 1), format="rgb24")))
        out.mux(stream.encode(None))
    frames = list(iter_frames(path))
    assert [f.shape for f in frames] == [(H, W, 3)] * 3
    assert [index_of(f) for f in frames] == [1, 2, 3]


def exif_orientation_jpeg(image_bgr: np.ndarray, orientation: int) -> bytes:
    """A JPEG with a minimal EXIF block holding only the orientation tag (big-endian TIFF)."""
    jpeg = cv2.imencode(".jpg", image_bgr)[1].tobytes()
    ifd = b"\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01" + orientation.to_bytes(2, "big") + b"\x00\x00" + b"\x00" * 4
    payload = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08" + ifd
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def test_still_images(tmp_path: Path) -> None:
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 2], rgba[..., 3] = 200, 0  # red (BGR order for OpenCV), fully transparent
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    cv2.imwrite(str(tmp_path / "grey.jpg"), np.full((H, W), 100, np.uint8))
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((H, W, 3), 65535, np.uint16))
    cv2.imwrite(str(tmp_path / "pic.webp"), np.full((H, W, 3), 50, np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101])
    cv2.imencode(".bmp", marked_frame())[1].tofile(str(tmp_path / "visage_é_顔.bmp"))

    alpha = list(iter_frames(tmp_path / "alpha.png"))
    assert len(alpha) == 1 and alpha[0].shape == (H, W, 3)
    assert tuple(alpha[0][0, 0]) == (200, 0, 0)  # alpha dropped, RGB order
    assert np.abs(next(iter_frames(tmp_path / "grey.jpg")).astype(int) - 100).max() <= 2
    assert next(iter_frames(tmp_path / "deep.png")).max() == 255
    assert next(iter_frames(tmp_path / "pic.webp")).shape == (H, W, 3)
    assert np.array_equal(next(iter_frames(tmp_path / "visage_é_顔.bmp")), marked_frame())
    assert list(iter_frames(tmp_path / "grey.jpg", skip_first_frames=1)) == []

    info = probe(tmp_path / "alpha.png", fps=Fraction(30))
    assert info.is_still and info.frame_count == 1 and info.fps == 30
    assert (info.width, info.height, info.duration) == (W, H, pytest.approx(1 / 30))
    assert probe(tmp_path / "pic.webp").fps == Fraction(25)


def test_still_image_exif_orientation_is_applied(tmp_path: Path) -> None:
    (tmp_path / "phone.jpg").write_bytes(exif_orientation_jpeg(marked_frame(), 6))  # 6: turn 90 cw
    frame = next(iter_frames(tmp_path / "phone.jpg"))
    assert frame.shape == (W, H, 3)
    assert np.abs(frame.astype(int) - np.rot90(marked_frame(), -1)).mean() < 8
    assert probe(tmp_path / "phone.jpg").width == H


# --- read errors -------------------------------------------------------------------------


def assert_video_error(path: Path, *words: str, probe_fails: bool = True) -> VideoError:
    with pytest.raises(VideoError) as caught:
        list(iter_frames(path))
    message = str(caught.value)
    assert path.name in message and "Traceback" not in message and message.count("\n") == 0
    for word in words:
        assert word in message, message
    if probe_fails:
        with pytest.raises(VideoError):
            probe(path)
    return caught.value


def test_errors_missing_empty_text(tmp_path: Path) -> None:
    assert_video_error(tmp_path / "missing.mp4", "does not exist")
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert_video_error(tmp_path / "empty.mp4", "empty")
    (tmp_path / "notes.mp4").write_text("these are my notes, not a video\n" * 20)
    assert isinstance(assert_video_error(tmp_path / "notes.mp4", "FFmpeg cannot open").__cause__, av.FFmpegError)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    assert_video_error(tmp_path / "broken.png", "OpenCV")
    assert_video_error(tmp_path, "folder")


def test_error_audio_only_file(tmp_path: Path) -> None:
    assert_video_error(make_audio(tmp_path / "speech.mp4", 44100, "mono", 0.3, codec="aac"), "audio but no video")


def test_errors_truncated_mp4(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(20)]
    # Index at the end (FFmpeg's default): half the file has no index, opening fails.
    data = make_video(tmp_path / "plain.mp4", frames=noise).read_bytes()
    (tmp_path / "plain_half.mp4").write_bytes(data[: len(data) // 2])
    assert_video_error(tmp_path / "plain_half.mp4", "corrupt")
    # Index first (+faststart): it opens, and the data runs out in the middle of a frame.
    data = make_video(tmp_path / "fast.mp4", frames=noise, faststart=True).read_bytes()
    (tmp_path / "fast_half.mp4").write_bytes(data[: len(data) // 2])
    # probe reads the header and the first frame only, so it succeeds here.
    assert_video_error(tmp_path / "fast_half.mp4", "cut off", probe_fails=False)
    assert probe(tmp_path / "fast_half.mp4").frame_count == 20
    # Cut exactly on a packet boundary: FFmpeg ends quietly; the sample table says more frames.
    with av.open(str(tmp_path / "fast.mp4")) as container:
        ends = [p.pos + p.size for p in container.demux(video=0) if p.size]
    (tmp_path / "fast_cut.mp4").write_bytes(data[: ends[9]])
    assert_video_error(tmp_path / "fast_cut.mp4", "10 of the 20 frames", probe_fails=False)
    # The frames before the damage can still be read with a cap.
    assert len(list(iter_frames(tmp_path / "fast_cut.mp4", frame_load_cap=5))) == 5


def test_trimmed_mp4_with_edit_list_is_not_reported_as_truncated(tmp_path: Path) -> None:
    # Remuxed with the first 5.5 frames before time 0: the muxer writes an edit list, and the
    # demuxer drops the frames before the last keyframe ahead of it from its index (but not
    # from stream.frames). A complete file, not a truncated one.
    source = tmp_path / "keys.mp4"
    with av.open(str(source), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"g": "2", "bf": "0", "preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        for i in range(20):
            out.mux(video.encode(av.VideoFrame.from_ndarray(grey(i), format="rgb24")))
        out.mux(video.encode(None))
    with av.open(str(source)) as inp, av.open(str(tmp_path / "trimmed.mp4"), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        shift = round(5.5 / 25 / inp.streams.video[0].time_base)
        for packet in inp.demux(video=0):
            if packet.dts is not None:
                packet.pts, packet.dts, packet.stream = packet.pts - shift, packet.dts - shift, stream
                out.mux(packet)
    frames = [index_of(f) for f in iter_frames(tmp_path / "trimmed.mp4")]
    assert frames == list(range(20 - len(frames), 20)) and 12 <= len(frames) <= 15


# --- writing video -----------------------------------------------------------------------


def test_h264_is_written_with_the_documented_encoder_settings(tmp_path: Path) -> None:
    """superfast with the macroblock tree (see lipsync.media._encode): x264 records its options in
    the stream itself."""
    out = tmp_path / "settings.mp4"
    with VideoWriter(out, 25) as writer:
        for i in range(5):
            writer.write(np.full((64, 64, 3), 40 * i, np.uint8))
    data = out.read_bytes()
    start = data.find(b"x264 - core")
    assert start >= 0
    options = data[start : data.find(b"\x00", start)].decode("ascii", "replace")
    for setting in ("me=dia", "subme=1", "mbtree=1", "rc_lookahead=10", "crf=18.0"):
        assert f" {setting} " in options + " ", (setting, options)


def test_odd_size_mp4_is_padded_by_one_edge_pixel(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:47, 0:65]
    image = np.stack([xx * 3, yy * 5, 255 - xx * 2], axis=-1).astype(np.uint8)
    with VideoWriter(tmp_path / "odd.mp4", Fraction(25)) as writer:
        for _ in range(5):
            writer.write(image)
    info = probe(tmp_path / "odd.mp4")
    assert (info.width, info.height, info.frame_count, info.codec) == (66, 48, 5, "h264")
    frame = next(iter_frames(tmp_path / "odd.mp4"))
    assert np.abs(frame[:47, :65].astype(int) - image).mean() < 3
    assert np.abs(frame[:47, 65].astype(int) - image[:, 64]).mean() < 6  # edge repeated
    assert leftovers(tmp_path) == []


def test_lossless_mkv_round_trip_is_bit_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (47, 65, 3), dtype=np.uint8) for _ in range(6)]
    with VideoWriter(tmp_path / "exact.mkv", Fraction(30000, 1001), lossless=True) as writer:
        for frame in frames:
            writer.write(frame)
    info = probe(tmp_path / "exact.mkv")
    assert (info.codec, info.width, info.height, info.frame_count) == ("ffv1", 65, 47, 6)
    assert info.fps == Fraction(30000, 1001)
    back = list(iter_frames(tmp_path / "exact.mkv"))
    assert len(back) == 6 and all(np.array_equal(a, b) for a, b in zip(frames, back))


def test_writer_rejects_bad_frames_and_names(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="mkv"):
        VideoWriter(tmp_path / "x.mp4", 25, lossless=True)
    with pytest.raises(OutputError, match="mp4"):
        VideoWriter(tmp_path / "x.avi", 25)
    with pytest.raises(ValueError), VideoWriter(tmp_path / "x.mp4", 25) as writer:
        writer.write(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError), VideoWriter(tmp_path / "x.mp4", 25) as writer:
        writer.write(grey(1))
        writer.write(grey(2, h=H + 2))
    assert list(tmp_path.iterdir()) == []


# --- writing audio -----------------------------------------------------------------------


def write_grey(path: Path, n: int, fps: Fraction = Fraction(25), **kwargs: object) -> Path:
    with VideoWriter(path, fps, **kwargs) as writer:  # type: ignore[arg-type]
        for i in range(n):
            writer.write(grey(i % 30))
    return path


def test_waveform_stereo_audio_is_cut_to_the_video(tmp_path: Path) -> None:
    path = write_grey(tmp_path / "out.mp4", 25, audio=tone_wave(44100, 2, 2.0))  # 2 s of audio, 1 s of video
    codec, rate, channels, samples, video_s = decode_audio(path)
    assert (codec, rate, channels, probe(path).codec) == ("aac", 44100, 2, "h264")
    assert video_s == pytest.approx(1.0, abs=0.04)
    assert abs(samples.shape[1] - 44100) <= 1024
    assert rms(samples[:, 2048:40000]) > 0.2


def test_short_audio_is_padded_with_silence(tmp_path: Path) -> None:
    path = write_grey(tmp_path / "out.mp4", 25, audio=tone_wave(48000, 1, 0.4))
    _, rate, channels, samples, _ = decode_audio(path)
    assert (rate, channels) == (48000, 1) and abs(samples.shape[1] - 48000) <= 1024
    assert rms(samples[:, 2048:16000]) > 0.2 and rms(samples[:, 24000:]) < 0.01


def test_audio_start_offsets(tmp_path: Path) -> None:
    wave = tone_wave(16000, 1, 2.0, silent_until=1.0)  # silence, then a tone at 1 s
    _, _, _, late, _ = decode_audio(write_grey(tmp_path / "late.mp4", 10, audio=wave, audio_start=1.0))
    assert rms(late[:, 1024:5000]) > 0.2
    early_path = write_grey(tmp_path / "early.mp4", 10, audio=tone_wave(16000, 1, 1.0), audio_start=-0.2)
    _, _, _, early, _ = decode_audio(early_path)
    assert rms(early[:, :2800]) < 0.01 and rms(early[:, 4000:6000]) > 0.2


@pytest.mark.parametrize(
    ("name", "rate", "layout", "codec", "expected_rate"),
    [
        ("mono.wav", 22050, "mono", "pcm_s16le", 22050),
        ("stereo.mp3", 44100, "stereo", "libmp3lame", 44100),
        ("surround.wav", 48000, "5.1", "pcm_s16le", 48000),
        ("odd_rate.wav", 37000, "stereo", "pcm_s16le", 48000),
    ],
)
def test_audio_from_a_file(tmp_path: Path, name: str, rate: int, layout: str, codec: str, expected_rate: int) -> None:
    source = make_audio(tmp_path / name, rate, layout, 1.5, codec)
    path = write_grey(tmp_path / "out.mp4", 20, fps=Fraction(30000, 1001), audio=str(source))
    got_codec, got_rate, channels, samples, video_s = decode_audio(path)
    assert (got_codec, got_rate, channels) == ("aac", expected_rate, av.AudioLayout(layout).nb_channels)
    assert abs(samples.shape[1] - video_s * got_rate) <= 1024 + got_rate / 30
    assert rms(samples[:, 4096:-4096]) > 0.1
    assert probe(path).frame_count == 20


def test_lossless_mkv_carries_flac_audio(tmp_path: Path) -> None:
    path = write_grey(tmp_path / "out.mkv", 10, audio=tone_wave(44100, 2, 1.0), lossless=True)
    codec, rate, channels, samples, _ = decode_audio(path)
    assert (codec, rate, channels) == ("flac", 44100, 2) and samples.shape[1] == 17640  # exactly 0.4 s
    assert probe(path).frame_count == 10


def test_lossy_mkv_counts_video_frames_not_the_longer_aac_track(tmp_path: Path) -> None:
    # Matroska has no per-stream duration field; the container's includes AAC's padding.
    path = write_grey(tmp_path / "out.mkv", 10, audio=tone_wave(44100, 2, 1.0))
    info = probe(path)
    assert (info.codec, info.frame_count, info.duration) == ("h264", 10, pytest.approx(0.4, abs=1e-3))
    assert decode_audio(path)[0] == "aac"


def test_bad_audio_raises_audio_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="does not exist"):
        VideoWriter(tmp_path / "out.mp4", 25, audio=str(tmp_path / "nope.wav"))
    with pytest.raises(AudioError, match="no audio track"):
        VideoWriter(tmp_path / "out.mp4", 25, audio=str(make_video(tmp_path / "silent.mp4", n=2)))
    bad = Waveform(np.full((1, 100), np.nan, np.float32), 16000, source="speech.wav")
    with pytest.raises(AudioError, match="speech.wav"):
        VideoWriter(tmp_path / "out.mp4", 25, audio=bad)
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.mp4").exists()


# --- atomicity ---------------------------------------------------------------------------


def test_exception_inside_with_leaves_nothing(tmp_path: Path) -> None:
    wave = tone_wave(44100, 2, 1.0)
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(tmp_path / "out.mp4", 25, audio=wave) as writer:
        writer.write(grey(1))
        assert len(leftovers(tmp_path)) == 1
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_aborted_write_keeps_the_existing_file(tmp_path: Path) -> None:
    final = tmp_path / "out.mp4"
    final.write_bytes(b"previous result")
    writer = VideoWriter(final, 25)
    writer.write(grey(1))
    writer.abort()
    assert final.read_bytes() == b"previous result" and leftovers(tmp_path) == []
    write_grey(final, 3)  # a successful write replaces it
    assert probe(final).frame_count == 3 and leftovers(tmp_path) == []


def test_close_without_frames_and_failed_close(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(OutputError, match="No frames"):
        VideoWriter(tmp_path / "empty.mp4", 25).close()

    def disk_full(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_encode.os, "replace", disk_full)
    with pytest.raises(OutputError, match="disk is full"):
        write_grey(tmp_path / "full.mp4", 3)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_folder(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OutputError, match="folder"):
        VideoWriter(tmp_path / "file.txt" / "out.mp4", 25)
    write_grey(tmp_path / "new" / "deeper" / "out.mp4", 2)  # missing folders are created
    assert (tmp_path / "new" / "deeper" / "out.mp4").is_file()


def test_cleanup_stale_temp_files(tmp_path: Path) -> None:
    old = tmp_path / f".clip{TEMP_MARKER}123-deadbeef.mp4"
    fresh = tmp_path / f".clip{TEMP_MARKER}456-cafebabe.mp4"
    mine = tmp_path / "clip.mp4"
    for path in (old, fresh, mine):
        path.write_bytes(b"x")
    long_ago = time.time() - 7200
    os.utime(old, (long_ago, long_ago))
    os.utime(mine, (long_ago, long_ago))
    assert cleanup_stale_temp_files(tmp_path, older_than_s=3600) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, mine.name])
    assert cleanup_stale_temp_files(tmp_path / "missing") == 0
