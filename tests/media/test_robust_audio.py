"""The audio side of the bad-input matrix (issue #6): whatever a phone, a TTS node or a download
produced goes through the whole job (``lipsync_video`` with a fake network) to a file whose
length covers the audio, or stops with one line naming the file and what to do.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from fakes import Recorder, write_video
from robust import assert_cli_fails, assert_nothing_written, output_streams, sync, tone

from lipsync.media.audio import waveform_from_array
from lipsync.models.wav2lip.mel import SILENCE
from lipsync.errors import AudioError
from lipsync.types import Waveform


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second of small frames (lossless): cheap to run the whole job on."""
    frames = [np.full((64, 64, 3), 8 * i, np.uint8) for i in range(25)]
    return write_video(tmp_path_factory.mktemp("v") / "clip.mkv", frames)


def speechlike(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    """(samples, channels) float: a tone whose loudness moves like syllables."""
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.4 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    return np.repeat(mono[:, None], channels, axis=1)


def encode(path: Path, codec: str, rate: int, layout: str, seconds: float) -> Path:
    """A compressed file with PyAV (planar float, or 16-bit for FLAC)."""
    channels = av.AudioLayout(layout).nb_channels
    data = speechlike(seconds, rate, channels).T.astype(np.float32)
    fmt = "s16" if codec == "flac" else "fltp"
    if fmt == "s16":
        data = (data * 32767).astype(np.int16)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        stream.format = fmt
        stream.codec_context.open()
        size = stream.codec_context.frame_size or 1024
        for start in range(0, data.shape[1], size):
            block = np.ascontiguousarray(data[:, start : start + size])
            if fmt == "s16":
                block = np.ascontiguousarray(block.T).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(block, format=fmt, layout=layout)
            frame.sample_rate, frame.pts = rate, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def covered_frames(audio: Path, fps: int = 25) -> int:
    """ceil(duration × fps) of the decoded audio: what the output must hold.

    Raw ADTS .aac has no edit list, so its decoded audio keeps the encoder's priming and padding
    (up to ~0.1 s more than was encoded); the muxed sound is the same decode, so sync holds.
    """
    from lipsync.media.audio import load_audio

    return int(np.ceil(load_audio(audio).duration * fps - 1e-9))


# --- unusable audio: one clear error -----------------------------------------------------------


def test_zero_length_wav(
    video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no samples.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 16000, subtype="PCM_16")
    assert empty.stat().st_size > 0  # a header and nothing else
    assert_cli_fails(
        video, empty, tmp_path / "out.mp4", capsys, monkeypatch, "no samples.wav", "zero samples", "re-export"
    )
    zero_bytes = tmp_path / "zero.wav"
    zero_bytes.write_bytes(b"")
    assert_cli_fails(video, zero_bytes, tmp_path / "out.mp4", capsys, monkeypatch, "zero.wav", "0 bytes", "re-export")
    assert_cli_fails(
        video, tmp_path / "nowhere.wav", tmp_path / "out.mp4", capsys, monkeypatch, "nowhere.wav", "not found"
    )


def test_zero_length_waveform(video: Path, tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="empty"):
        sync(video, waveform_from_array(np.zeros((1, 0), np.float32), 44100, source="TTS output"), tmp_path / "o.mp4")
    with pytest.raises(AudioError, match="empty"):
        sync(video, Waveform(np.zeros((1, 0), np.float32), 16000), tmp_path / "o.mp4")
    assert_nothing_written(tmp_path / "o.mp4")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_samples(
    video: Path, tmp_path: Path, bad: float, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = speechlike(0.5, 16000).astype(np.float32)
    samples[4000:4010] = bad
    wav = tmp_path / "broken tts.wav"
    sf.write(wav, samples, 16000, subtype="FLOAT")
    assert_cli_fails(
        video, wav, tmp_path / "out.mp4", capsys, monkeypatch, "broken tts.wav", "NaN or infinite", "regenerate"
    )
    with pytest.raises(AudioError, match="NaN"):
        sync(video, Waveform(samples.T.copy(), 16000, "node input"), tmp_path / "o.mp4")
    assert_nothing_written(tmp_path / "o.mp4")


def test_file_without_audio_track(
    video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_cli_fails(video, video, tmp_path / "out.mp4", capsys, monkeypatch, "clip.mkv", "no audio track")


# --- usable audio: a correct result -----------------------------------------------------------


def test_all_silence_gives_silent_windows(video: Path, tmp_path: Path) -> None:
    net = Recorder()
    result = sync(video, Waveform(np.zeros((1, 16000), np.float32), 16000), tmp_path / "o.mp4", network=net)
    assert result.frames == 25
    assert np.all(net.all_mel() == SILENCE)


def test_clipped_audio(video: Path, tmp_path: Path) -> None:
    """Hard-clipped int16 and float samples far past full scale (a TTS overshoot) both work."""
    clipped = np.clip(speechlike(1.0, 16000) * 8, -1, 1)
    wav = tmp_path / "clipped.wav"
    sf.write(wav, (clipped * 32767).astype(np.int16), 16000, subtype="PCM_16")
    hot = tmp_path / "hot.wav"
    sf.write(hot, (speechlike(1.0, 16000) * 6).astype(np.float32), 16000, subtype="FLOAT")  # peaks at 2.4
    for audio in (wav, hot):
        net = Recorder()
        result = sync(video, audio, tmp_path / f"{audio.stem}.mp4", network=net)
        mel = net.all_mel()
        assert result.frames == 25 and np.isfinite(mel).all() and mel.min() >= -4 and mel.max() <= 4
        assert output_streams(tmp_path / f"{audio.stem}.mp4")["audio_s"] == pytest.approx(1.0, abs=0.04)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_sample_formats(video: Path, tmp_path: Path, subtype: str) -> None:
    wav = tmp_path / f"{subtype}.wav"
    sf.write(wav, speechlike(0.8, 22050), 22050, subtype=subtype)
    net = Recorder()
    result = sync(video, wav, tmp_path / "o.mp4", network=net)
    assert result.frames == 20
    assert net.all_mel().max() > -3  # the speech is there, not silence or noise


@pytest.mark.parametrize(
    ("name", "codec", "rate"),
    [
        ("voice.mp3", "libmp3lame", 44100),
        ("voice.flac", "flac", 48000),
        ("voice.m4a", "aac", 44100),
        ("voice.opus", "libopus", 48000),
        ("voice.ogg", "libopus", 24000),
        ("voice.aac", "aac", 22050),
        ("voice.ac3", "ac3", 48000),
    ],
)
def test_compressed_formats(video: Path, tmp_path: Path, name: str, codec: str, rate: int) -> None:
    audio = encode(tmp_path / name, codec, rate, "stereo" if codec == "ac3" else "mono", 0.8)
    out = tmp_path / "o.mp4"
    result = sync(video, audio, out)
    assert abs(result.frames - 20) <= 3 and result.frames == covered_frames(audio)
    streams = output_streams(out)
    assert abs(streams["audio_s"] - streams["video_s"]) <= 0.04


def test_more_than_eight_planar_channels(video: Path, tmp_path: Path) -> None:
    """16-channel Opus (3rd-order ambisonics): PyAV's to_ndarray crashed the process on planar
    frames of more than 8 channels (found by the fuzzer on an AAC header claiming 30)."""
    layout = "hexadecagonal"
    data = speechlike(0.4, 48000, 16).T.astype(np.float32)
    ogg = tmp_path / "ambisonic.ogg"
    with av.open(str(ogg), "w") as out:
        stream = out.add_stream("libopus", rate=48000, layout=layout, options={"mapping_family": "255"})
        for start in range(0, data.shape[1], 960):
            packed = np.ascontiguousarray(data[:, start : start + 960].T).reshape(1, -1)  # libopus takes flt
            frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=layout)
            frame.sample_rate, frame.pts = 48000, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    from lipsync.media.audio import load_audio

    wave = load_audio(ogg)
    assert wave.channels == 16 and abs(wave.duration - 0.4) < 0.03
    assert np.allclose(wave.samples[0], wave.samples[15], atol=0.02)  # the channels in their places
    out = tmp_path / "o.mp4"
    assert sync(video, ogg, out).frames == 10
    assert output_streams(out)["channels"] == 2  # more than 8: the file gets a stereo downmix


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000])
def test_sample_rates(video: Path, tmp_path: Path, rate: int) -> None:
    wav = tmp_path / "a.wav"
    sf.write(wav, speechlike(0.6, rate), rate, subtype="PCM_16")
    out = tmp_path / "o.mp4"
    net = Recorder()
    result = sync(video, wav, out, network=net)
    assert result.frames == 15
    streams = output_streams(out)
    assert streams["audio_rate"] == rate  # AAC stores every rate of this list; others become 48 kHz
    assert abs(streams["audio_s"] - 0.6) <= 0.04


def test_same_speech_same_windows_at_every_rate(video: Path, tmp_path: Path) -> None:
    """The mel windows do not depend on the file's rate (all are resampled to 16 kHz first)."""
    mels = []
    for rate in (8000, 48000):
        sf.write(tmp_path / f"{rate}.wav", speechlike(0.6, rate), rate, subtype="FLOAT")
        net = Recorder()
        sync(video, tmp_path / f"{rate}.wav", tmp_path / "o.mp4", network=net)
        mels.append(net.all_mel())
    low_band = slice(0, 40)  # 8 kHz has nothing above 4 kHz: compare the speech band
    assert np.abs(mels[0][:, low_band] - mels[1][:, low_band]).mean() < 0.15


@pytest.mark.parametrize(("channels", "layout"), [(2, "stereo"), (6, "5.1")])
def test_stereo_and_surround(video: Path, tmp_path: Path, channels: int, layout: str) -> None:
    wav = tmp_path / f"{layout}.wav"
    sf.write(wav, speechlike(0.6, 48000, channels), 48000, subtype="PCM_16")
    out = tmp_path / "o.mp4"
    result = sync(video, wav, out)
    assert result.frames == 15
    assert output_streams(out)["channels"] == channels  # kept, not downmixed, in the file


def test_audio_much_longer_than_the_video(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "long.mkv"
    result = sync(video, tone(8.0), out, lossless=True)
    assert result.frames == 200  # the 1 s clip ping-pongs to cover 8 s
    streams = output_streams(out)
    assert streams["frames"] == 200 and abs(streams["audio_s"] - 8.0) <= 0.04


@pytest.mark.parametrize(("seconds", "frames"), [(0.2, 5), (0.01, 1), (1 / 16000, 1)])
def test_audio_much_shorter_than_the_video(video: Path, tmp_path: Path, seconds: float, frames: int) -> None:
    out = tmp_path / "short.mp4"
    result = sync(video, tone(seconds), out)
    assert result.frames == frames  # the video is cut to the audio (at least one frame)
    assert output_streams(out)["frames"] == frames


def test_host_audio_with_a_batch_of_clips(video: Path, tmp_path: Path) -> None:
    """ComfyUI's AUDIO is {"waveform": (B, C, T), "sample_rate"}; B > 1 clips play one after another."""
    import torch

    batch = torch.from_numpy(
        np.stack([speechlike(0.4, 24000, 2).T, speechlike(0.4, 24000, 2).T * 0.5]).astype(np.float32)
    )
    audio = {"waveform": batch, "sample_rate": 24000}
    wave = waveform_from_array(audio["waveform"], audio["sample_rate"], source="AUDIO")
    assert wave.channels == 2 and wave.num_samples == 2 * 9600
    out = tmp_path / "o.mp4"
    result = sync(video, wave, out)
    assert result.frames == 20  # 0.8 s: both clips
    assert abs(output_streams(out)["audio_s"] - 0.8) <= 0.04


def test_host_audio_odd_layouts(video: Path, tmp_path: Path) -> None:
    """Mono as (T,), int16 PCM, float64, a rate given as 44100.0: all accepted; (T, C) refused."""
    for samples, rate in [
        (speechlike(0.4, 16000)[:, 0], 16000),
        ((speechlike(0.4, 16000).T * 32767).astype(np.int16), 16000),
        (speechlike(0.4, 44100).T.astype(np.float64), 44100.0),
    ]:
        assert sync(video, waveform_from_array(samples, rate), tmp_path / "o.mp4").frames == 10
    with pytest.raises(AudioError, match="transpose"):
        waveform_from_array(speechlike(0.4, 16000, 2), 16000)
    with pytest.raises(AudioError, match="sample rate"):
        waveform_from_array(speechlike(0.4, 16000)[:, 0], Fraction(1, 2))
