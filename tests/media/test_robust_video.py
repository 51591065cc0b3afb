"""The video side of the bad-input matrix (issue #6), end to end through ``lipsync_video`` (a fake
network, a fixed box) and the CLI: every file either gives a correct result or fails with one
line naming the file, what is wrong and what to do, leaving nothing behind.

Variable frame rate: frames are placed by their timestamps at the file's (average) rate, a dip
repeats the held frame and a burst drops extras (``lipsync.media.video._constant_rate``), so motion
keeps its speed and the output covers exactly the audio. The hour-long input is behind ``slow``.
"""

from __future__ import annotations

import resource
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from fakes import FakeDetector, write_video
from robust import (
    Identity,
    Painter,
    assert_cli_fails,
    assert_nothing_written,
    face_clip,
    green_mask,
    make_clip,
    output_streams,
    sync,
    tone,
)

from lipsync.errors import VideoError
from lipsync.faces import YuFaceDetector
from lipsync.types import Box, Waveform
from lipsync.media.video import iter_frames, probe

rng = np.random.default_rng(6)


def noise(n: int, h: int = 48, w: int = 64) -> list[np.ndarray]:
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def levels(n: int, h: int = 48, w: int = 64, step: int = 4) -> list[np.ndarray]:
    """Flat frames of level i * step: the index survives lossy coding."""
    return [np.full((h, w, 3), i * step, np.uint8) for i in range(n)]


def index_of(frame: np.ndarray, step: int = 4) -> int:
    return round(float(frame.mean()) / step)


# --- broken files: one clear error, nothing written -------------------------------------------


def cut_mp4(tmp_path: Path) -> Path:
    """An mp4 cut off at 60 %: the header (faststart) is whole, the frames run out mid-stream."""
    data = make_clip(tmp_path / "full.mp4", noise(60), faststart=True).read_bytes()
    cut = tmp_path / "cut off.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    return cut


def test_mp4_cut_off_half_way_fails_mid_run_and_leaves_nothing(tmp_path: Path) -> None:
    video = cut_mp4(tmp_path)
    assert probe(video).frame_count == 60  # the header still claims every frame
    out = tmp_path / "out.mp4"
    with pytest.raises(VideoError, match="cut off") as caught:
        sync(video, tone(2.4), out, batch_size=4, chunk_batches=2)  # 8-frame chunks: the writer has started
    assert "cut off.mp4" in str(caught.value) and "re-export" in str(caught.value)
    assert_nothing_written(out)


def test_mp4_cut_off_in_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    video = cut_mp4(tmp_path)
    audio = tmp_path / "a.wav"
    write_wav(audio, tone(2.4))
    assert_cli_fails(video, audio, tmp_path / "out.mp4", capsys, monkeypatch, "cut off.mp4", "cut off", "re-export")


def write_wav(path: Path, wave: Waveform) -> Path:
    import soundfile as sf

    sf.write(path, wave.samples.T, wave.sample_rate, subtype="PCM_16")
    return path


@pytest.mark.parametrize(
    ("name", "damage", "words"),
    [
        ("zeroed ftyp", lambda d: b"\0" * 16 + d[16:], ("FFmpeg cannot open",)),
        (
            "random header",
            lambda d: bytes(np.random.default_rng(1).integers(0, 256, 512, dtype=np.uint8)) + d[512:],
            ("FFmpeg cannot open",),
        ),
        ("garbage moov", lambda d: d[: d.find(b"moov") + 4] + b"\x17" * 200 + d[d.find(b"moov") + 204 :], ("damaged",)),
        ("no sample sizes", lambda d: d.replace(b"stsz", b"xxxx"), ("no decodable video frame",)),
    ],
)
def test_corrupt_header(tmp_path: Path, name: str, damage, words: tuple[str, ...]) -> None:
    data = make_clip(tmp_path / "good.mp4", noise(10), faststart=True).read_bytes()
    video = tmp_path / "damaged.mp4"
    video.write_bytes(damage(data))
    out = tmp_path / "out.mp4"
    with pytest.raises(VideoError) as caught:
        sync(video, tone(0.4), out)
    message = str(caught.value)
    assert "damaged.mp4" in message and "\n" not in message and "re-export" in message, message
    for word in words:
        assert word in message, message
    assert_nothing_written(out)


def test_no_video_stream_zero_bytes_and_text_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = write_wav(tmp_path / "voice.wav", tone(0.4))
    speech = tmp_path / "speech only.mp4"  # an m4a (AAC, no picture) named .mp4
    with av.open(str(speech), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000, layout="mono")
        for k in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    notes = tmp_path / "notes.mp4"
    notes.write_text("meeting notes, not a video\n" * 40)
    out = tmp_path / "out.mp4"
    assert_cli_fails(speech, audio, out, capsys, monkeypatch, "speech only.mp4", "audio but no video", "give a video")
    assert_cli_fails(empty, audio, out, capsys, monkeypatch, "empty.mp4", "empty (0 bytes)", "re-export")
    assert_cli_fails(notes, audio, out, capsys, monkeypatch, "notes.mp4", "FFmpeg cannot open", "re-export")
    assert_cli_fails(tmp_path / "missing.mp4", audio, out, capsys, monkeypatch, "missing.mp4", "does not exist")


# --- unusual but valid files: a correct result ------------------------------------------------


def vfr_pts() -> list[int]:
    """A phone-like recording in ms: 1 s at 30 fps, 1 s at 15 fps (low light), 1 s at 30 fps."""
    return (
        [round(i * 1000 / 30) for i in range(30)]
        + [1000 + round(i * 1000 / 15) for i in range(15)]
        + [2000 + round(i * 1000 / 30) for i in range(30)]
    )


@pytest.mark.parametrize(("suffix", "codec", "rate"), [(".mp4", "libx264", 25), (".mkv", "libx264", 30)])
def test_variable_frame_rate_keeps_time(tmp_path: Path, suffix: str, codec: str, rate: int) -> None:
    """75 frames over 3 s with a dip to 15 fps in the middle second.

    MP4 reports the average rate (75 / 3.0003 s, snapped to 25); Matroska the nominal 30. Either
    way the frames are placed by their timestamps: the output lasts as long as the audio and
    frame k shows what the camera saw at k / fps (within one frame), so nothing drifts.
    """
    pts = vfr_pts()
    video = make_clip(
        tmp_path / f"phone{suffix}", levels(75, step=3), 30, codec=codec, pts=pts, time_base=Fraction(1, 1000)
    )
    info = probe(video)
    assert info.fps == rate
    out = tmp_path / "out.mkv"
    result = sync(video, tone(3.0), out, lossless=True)
    assert result.frames == 3 * rate and result.fps == rate
    shown = [index_of(f, step=3) for f in iter_frames(out)]
    times = [pts[i] / 1000 for i in shown]
    for k, t in enumerate(times):
        assert abs(t - k / rate) <= 1 / 15 + 1e-6, (k, t)  # at most one source frame late or early
    streams = output_streams(out)
    assert abs(streams["video_s"] - 3.0) <= 1 / rate and abs(streams["audio_s"] - streams["video_s"]) <= 1 / rate


def test_broken_timestamps_fall_back_to_decode_order(tmp_path: Path) -> None:
    """A timestamp leaping an hour ahead (a broken muxer) is not an hour of repeated frames."""
    pts = [i * 40 for i in range(10)] + [3_600_000 + i * 40 for i in range(10)]
    video = make_clip(tmp_path / "leap.mkv", levels(20), 25, pts=pts, time_base=Fraction(1, 1000))
    assert [index_of(f) for f in iter_frames(video)] == list(range(20))


def face_rotated(n: int) -> list[np.ndarray]:
    """The real face stored lying on its side, as a phone held upright stores it."""
    return [np.ascontiguousarray(np.rot90(f, 1)) for f in face_clip(n)]


def test_rotated_phone_video_is_processed_upright(tmp_path: Path) -> None:
    # Stored turned 90° counter-clockwise; the display matrix says turn it back clockwise.
    video = make_clip(tmp_path / "portrait.mp4", face_rotated(6), rotation=-90)
    assert probe(video).rotation == 90
    out = tmp_path / "out.mp4"
    result = sync(video, tone(0.24), out, network=Painter(), detector=YuFaceDetector())
    assert result.frames == 6 and result.frames_with_face == 6  # the detector saw upright faces
    streams = output_streams(out)
    assert (streams["width"], streams["height"]) == (512, 512)
    frame = next(iter_frames(out))
    rows = np.nonzero(green_mask(frame).any(axis=1))[0]
    assert 250 < rows.mean() < 380, rows.mean()  # the mouth is in the lower face: upright


def test_odd_frame_size(tmp_path: Path) -> None:
    frames = [np.ascontiguousarray(cv2.resize(f, (641, 359))) for f in face_clip(4)]
    video = write_video(tmp_path / "odd.mkv", frames)
    out = tmp_path / "odd out.mp4"
    result = sync(video, tone(0.16), out, network=Painter(), detector=FakeDetector(box=(250, 80, 400, 330)))
    assert result.frames == 4
    streams = output_streams(out)
    assert (streams["width"], streams["height"]) == (642, 360)  # H.264 4:2:0: one edge pixel added
    lossless = tmp_path / "odd out.mkv"
    sync(video, tone(0.16), lossless, network=Painter(), detector=FakeDetector(box=(250, 80, 400, 330)), lossless=True)
    assert next(iter_frames(lossless)).shape == (359, 641, 3)


def test_4k(tmp_path: Path) -> None:
    face = cv2.resize(face_clip(1)[0], (1600, 1600))
    frame = np.zeros((2160, 3840, 3), np.uint8)
    frame[280:1880, 1120:2720] = face
    video = make_clip(tmp_path / "uhd.mp4", [frame] * 3)
    out = tmp_path / "uhd out.mp4"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = sync(video, tone(0.12), out, network=Painter(), detector=YuFaceDetector())
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.frames == 3 and result.frames_with_face == 3
    streams = output_streams(out)
    assert (streams["width"], streams["height"]) == (3840, 2160)
    assert grown_mb < 1500, grown_mb


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt", "src_format"),
    [
        ("grey.mkv", "ffv1", "gray", "gray"),
        ("grey16.mkv", "ffv1", "gray16le", "gray16le"),
        ("alpha.mov", "png", "rgba", "rgba"),
        ("alpha.webm", "libvpx-vp9", "yuva420p", "rgba"),
    ],
)
def test_grey_and_alpha_videos(tmp_path: Path, name: str, codec: str, pix_fmt: str, src_format: str) -> None:
    base = face_clip(3)
    if src_format.startswith("gray"):
        frames = [cv2.cvtColor(cv2.resize(f, (128, 128)), cv2.COLOR_RGB2GRAY) for f in base]
        if src_format == "gray16le":
            frames = [f.astype(np.uint16) * 257 for f in frames]
    else:
        frames = [np.dstack([cv2.resize(f, (128, 128)), np.full((128, 128), 128, np.uint8)]) for f in base]
    video = make_clip(tmp_path / name, frames, codec=codec, pix_fmt=pix_fmt, src_format=src_format)
    out = tmp_path / "out.mp4"
    result = sync(video, tone(0.12), out)
    assert result.frames == 3
    assert output_streams(out)["width"] == 128


@pytest.mark.parametrize("name", ["face.png", "face.jpg", "face with alpha.png", "grey face.png"])
def test_still_image_becomes_a_video_as_long_as_the_audio(tmp_path: Path, name: str) -> None:
    image = cv2.cvtColor(cv2.resize(face_clip(1)[0], (256, 256)), cv2.COLOR_RGB2BGR)
    if "alpha" in name:
        image = np.dstack([image, np.full((256, 256), 200, np.uint8)])
    if "grey" in name:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / name), image)
    out = tmp_path / "out.mp4"
    result = sync(tmp_path / name, tone(1.0), out, detector=YuFaceDetector(), network=Painter())
    assert result.frames == 25 and result.frames_with_face == 25
    streams = output_streams(out)
    assert streams["frames"] == 25 and abs(streams["audio_s"] - 1.0) < 0.03


def test_one_frame_video_is_held(tmp_path: Path) -> None:
    video = make_clip(tmp_path / "one.mp4", levels(1))
    out = tmp_path / "out.mkv"
    result = sync(video, tone(0.4), out, lossless=True)
    assert result.frames == 10
    assert [index_of(f) for f in iter_frames(out)] == [0] * 10


@pytest.mark.parametrize("fps", [Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001)])
def test_ntsc_frame_rates_are_exact(tmp_path: Path, fps: Fraction) -> None:
    video = make_clip(tmp_path / "ntsc.mp4", levels(20), fps)
    assert probe(video).fps == fps
    out = tmp_path / "out.mp4"
    result = sync(video, tone(2.0), out)
    expected = -(-2 * fps.numerator // fps.denominator)  # ceil(2 s × fps)
    assert result.fps == fps and result.frames == expected
    streams = output_streams(out)
    assert streams["fps"] == fps and streams["frames"] == expected
    assert abs(streams["audio_s"] - streams["video_s"]) <= 1 / float(fps)


# --- very long: streaming, flat memory --------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def stream_long(tmp_path: Path, minutes: float, size: int = 64) -> tuple[float, float, int]:
    """``minutes`` of small video through the whole pipeline; RSS (MB) after 1 minute and at the end."""
    n = int(minutes * 60 * 25)
    video = tmp_path / "long.mp4"
    base = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    with av.open(str(video), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(n):
            frame = base.copy()
            frame[:4, :4] = i % 256
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    audio = Waveform(np.zeros((1, n * 320), np.float32), 8000)  # as long as the video, 8 kHz
    marks: dict[str, float] = {}

    def progress(done: int, total: int) -> None:
        if done >= 1500 and "one_minute" not in marks:
            marks["one_minute"] = rss_mb()

    from lipsync.engine.lipsync import LipSyncOptions, lipsync_video

    result = lipsync_video(
        video,
        audio,
        tmp_path / "long out.mp4",
        Identity(),
        LipSyncOptions.of(box=Box(8, size - 8, 8, size - 8)),
        progress=progress,
    )
    return marks["one_minute"], rss_mb(), result.frames


def test_two_minutes_stream_with_flat_memory(tmp_path: Path) -> None:
    early, late, frames = stream_long(tmp_path, 2, size=32)
    assert frames == 3000
    assert late - early < 40, (early, late)


@pytest.mark.slow
def test_an_hour_streams_with_flat_memory(tmp_path: Path) -> None:
    early, late, frames = stream_long(tmp_path, 60)
    print(f"an hour of 64x64 video: RSS {early:.0f} MB after 1 min, {late:.0f} MB after 60 min")
    assert frames == 90_000
    assert late - early < 40, (early, late)
