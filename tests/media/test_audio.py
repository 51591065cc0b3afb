"""Tests of lipsync.media.audio: golden Wav2Lip features, exact window indexing, decoding, errors."""

from __future__ import annotations

import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.signal import lfilter

from lipsync.media import audio as A
from lipsync.models.wav2lip import mel as M
from lipsync.errors import AudioError
from lipsync.types import Waveform

from conftest import FIXTURE

needs_fixture = pytest.mark.skipif(
    not (FIXTURE / "case_a" / "expected.npz").is_file(),
    reason=f"golden Wav2Lip fixture not found under {FIXTURE} (set LIPSYNC_SHARED)",
)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "case_a" / "expected.npz") as data:
        return {k: data[k] for k in ("wav", "mel", "mel_chunks")}


def _sine(rate: int, seconds: float, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return np.repeat((0.5 * np.sin(2 * np.pi * freq * t))[None].astype(np.float32), channels, 0)


def _peak_hz(x: np.ndarray, rate: int = 16000) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(x))) * rate / len(x))


def _reference_mel(wav: np.ndarray) -> np.ndarray:
    """The original audio.py in plain numpy, unchunked (np.pad reflect = librosa 0.7 centering)."""
    y = np.pad(lfilter([1, -0.97], [1], wav), 400, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(y, 800)[::200]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(800) / 800)
    mel = M.mel_basis() @ np.abs(np.fft.rfft(frames * window, axis=1)).T
    s = 20 * np.log10(np.maximum(1e-5, mel)) - 20
    return np.clip(8 * ((s + 100) / 100) - 4, -4, 4).astype(np.float32)


def _reference_loop(mel: np.ndarray, fps: float) -> list[np.ndarray]:
    """inference.py, verbatim."""
    chunks, mult, i = [], 80.0 / float(fps), 0
    while True:
        start = int(i * mult)
        if start + 16 > len(mel[0]):
            chunks.append(mel[:, len(mel[0]) - 16 :])
            break
        chunks.append(mel[:, start : start + 16])
        i += 1
    return chunks


# ----------------------------------------------------------------------------- golden fixture


@needs_fixture
def test_load_fixture_wav(golden: dict[str, np.ndarray]) -> None:
    w = A.load_audio(FIXTURE / "speech_3s.wav")
    assert (w.sample_rate, w.channels, w.num_samples) == (16000, 1, 48000)
    assert w.samples.dtype == np.float32
    assert np.abs(w.samples[0] - golden["wav"]).max() <= 1e-6


@needs_fixture
def test_melspectrogram_matches_reference(golden: dict[str, np.ndarray]) -> None:
    w = A.load_audio(FIXTURE / "speech_3s.wav")
    mel = M.melspectrogram(A.to_model_rate(w))
    assert mel.shape == (80, 241) and mel.dtype == np.float32
    assert np.abs(mel - golden["mel"]).max() <= 1e-4


@needs_fixture
def test_reference_windows_exact(golden: dict[str, np.ndarray]) -> None:
    chunks = M.mel_windows(golden["mel"], 25, 0, reference=True)
    assert chunks.shape == (72, 80, 16)
    assert np.array_equal(chunks, golden["mel_chunks"])
    assert M.reference_frame_count(241, 25) == 72


@needs_fixture
def test_default_windows_pad_tail(golden: dict[str, np.ndarray]) -> None:
    mel = golden["mel"]
    n = M.frame_count_for_audio(48000, 25)
    assert n == 75
    win = M.mel_windows(mel, 25, n)
    assert win.shape == (75, 80, 16) and win.dtype == np.float32
    assert np.array_equal(win[:71], golden["mel_chunks"][:71])
    for i in range(71, 75):
        start = math.floor(i * 3.2)
        for j in range(16):
            col = start + j
            expect = mel[:, col] if col < 241 else np.full(80, M.SILENCE, np.float32)
            assert np.array_equal(win[i, :, j], expect)
    # 74 * 3.2 = 236.8 -> columns 236..251: 236..240 are audio, 241..251 padded
    assert np.all(win[74, :, 5:] == M.SILENCE)
    assert np.array_equal(win[74, :, :5], mel[:, 236:241])


def test_mel_basis_matches_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    expect = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    assert np.abs(M.mel_basis() - expect).max() <= 1e-7


def test_mel_matches_librosa_reflect_stft() -> None:
    librosa = pytest.importorskip("librosa")
    wav = np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.1
    y = lfilter([1, -0.97], [1], wav)
    spec = np.abs(librosa.stft(y, n_fft=800, hop_length=200, win_length=800, pad_mode="reflect"))
    s = 20 * np.log10(np.maximum(1e-5, M.mel_basis() @ spec)) - 20
    assert np.abs(M.melspectrogram(wav) - np.clip(8 * ((s + 100) / 100) - 4, -4, 4)).max() <= 1e-5


# ----------------------------------------------------------------------------- mel details


def test_chunked_equals_whole() -> None:
    wav = np.random.default_rng(0).standard_normal(16000 * 5 + 123).astype(np.float32) * 0.2
    whole = M.melspectrogram(wav, chunk_frames=10**9)
    for chunk in (1, 7, 64, 4096):
        assert np.array_equal(M.melspectrogram(wav, chunk_frames=chunk), whole)
    assert np.abs(whole - _reference_mel(wav)).max() <= 1e-6


@pytest.mark.parametrize("n", [1, 2, 3, 50, 399, 400, 401, 799, 800, 801, 1000])
def test_short_inputs_match_np_pad_reflect(n: int) -> None:
    wav = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    mel = M.melspectrogram(wav, chunk_frames=2)
    assert mel.shape == (80, 1 + n // 200)
    if n >= 2:  # np.pad cannot reflect a single sample; we repeat it instead
        assert np.abs(mel - _reference_mel(wav)).max() <= 1e-6


def test_silence_is_floor_and_bad_input() -> None:
    assert np.all(M.melspectrogram(np.zeros(4000, np.float32)) == M.SILENCE)
    with pytest.raises(AudioError, match="NaN"):
        M.melspectrogram(np.array([0.0, np.nan] * 500, np.float32))
    with pytest.raises(AudioError, match="empty"):
        M.melspectrogram(np.zeros(0, np.float32))


def test_module_import_is_light() -> None:
    code = "import sys, lipsync.media.audio; assert 'librosa' not in sys.modules, 'librosa imported'"
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


# ----------------------------------------------------------------------------- windows


def _brute_starts(n: int, fps: Fraction, offset_ms: float = 0.0, first: int = 0) -> list[int]:
    off = Fraction(offset_ms).limit_denominator(1000)
    return [math.floor((i - off * fps / 1000) * 80 / fps) for i in range(first, first + n)]


FPS = [Fraction(24000, 1001), Fraction(30000, 1001), 29.97, 30, 50, 60, 25, 23.976]


@pytest.mark.parametrize("fps", FPS)
def test_window_starts_exact(fps: Fraction | float) -> None:
    frac = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(100000)
    got = M.window_starts(500, fps)
    assert got.dtype == np.int64
    assert got.tolist() == _brute_starts(500, frac)
    mel = np.random.default_rng(2).standard_normal((80, 300)).astype(np.float32)
    n = M.frame_count_for_audio(299 * 200, fps)
    win = M.mel_windows(mel, fps, n)
    assert win.shape == (n, 80, 16)
    for i, start in enumerate(_brute_starts(n, frac)):
        cols = np.arange(start, start + 16)
        ok = cols < 300
        assert np.array_equal(win[i][:, ok], mel[:, cols[ok]])
        assert np.all(win[i][:, ~ok] == M.SILENCE)


@pytest.mark.parametrize("fps", FPS)
def test_reference_mode_matches_loop(fps: Fraction | float) -> None:
    mel = np.random.default_rng(3).standard_normal((80, 257)).astype(np.float32)
    expect = np.stack(_reference_loop(mel, float(fps)))
    got = M.mel_windows(mel, fps, 999, offset_ms=123.0, reference=True)
    assert np.array_equal(got, expect)
    assert M.reference_frame_count(257, fps) == len(expect)


def test_reference_mode_too_short() -> None:
    with pytest.raises(AudioError, match="too short"):
        M.mel_windows(np.zeros((80, 10), np.float32), 25, 1, reference=True)


def test_offset_sign_delays_mouth() -> None:
    mel = np.random.default_rng(4).standard_normal((80, 200)).astype(np.float32)
    plain = M.mel_windows(mel, 25, 20)
    late = M.mel_windows(mel, 25, 20, offset_ms=40.0)  # one frame at 25 fps
    assert np.array_equal(late[1:], plain[:-1])  # frame i shows what frame i-1 showed
    assert np.all(late[0][:, :4] == M.SILENCE)  # start floor(-3.2) = -4
    early = M.mel_windows(mel, 25, 20, offset_ms=-40.0)
    assert np.array_equal(early[:-1], plain[1:])
    assert M.window_starts(3, 25, offset_ms=10.0).tolist() == _brute_starts(3, Fraction(25), 10.0)


def test_two_hour_index_does_not_wrap() -> None:
    assert M.window_starts(1, 25, first_frame=179999).tolist() == [575996]
    ntsc = Fraction(30000, 1001)
    got = M.window_starts(2, ntsc, first_frame=215783)
    assert got.tolist() == _brute_starts(2, ntsc, 0.0, 215783)
    huge = 10**15  # beyond int64-safe products: the exact Python-int path
    assert M.window_starts(1, ntsc, first_frame=huge).tolist() == _brute_starts(1, ntsc, 0.0, huge)
    win = M.mel_windows(np.zeros((80, 100), np.float32), 25, 1, first_frame=179999)
    assert win.shape == (1, 80, 16) and np.all(win == M.SILENCE)
    assert M.frame_count_for_audio(2 * 3600 * 16000, 25) == 180000


def test_frame_count_for_audio() -> None:
    assert M.frame_count_for_audio(48000, 25) == 75
    assert M.frame_count_for_audio(48001, 25) == 76
    assert M.frame_count_for_audio(0, 25) == 1
    assert M.frame_count_for_audio(16000, Fraction(30000, 1001)) == 30  # 29.97 -> 30
    assert M.frame_count_for_audio(16000 * 1001, Fraction(30000, 1001)) == 30000


# ----------------------------------------------------------------------------- arrays


def test_waveform_from_array_shapes() -> None:
    mono = A.waveform_from_array(np.zeros(100, np.float64), 16000)
    assert mono.samples.shape == (1, 100) and mono.samples.dtype == np.float32
    stereo = A.waveform_from_array(np.ones((2, 50), np.float32), 44100.0, source="clip")
    assert (stereo.channels, stereo.sample_rate, stereo.source) == (2, 44100, "clip")
    batch = np.stack([np.full((2, 10), k, np.float32) for k in range(3)])
    joined = A.waveform_from_array(batch, 8000)
    assert joined.samples.shape == (2, 30)
    assert joined.samples[0].tolist() == [0.0] * 10 + [1.0] * 10 + [2.0] * 10
    pcm = A.waveform_from_array(np.array([-32768, 0, 16384], np.int16), 8000)
    assert pcm.samples[0].tolist() == [-1.0, 0.0, 0.5]


def test_waveform_from_torch() -> None:
    torch = pytest.importorskip("torch")
    t = torch.linspace(-1, 1, 300).reshape(1, 3, 100).requires_grad_()
    w = A.waveform_from_array(t, 22050)
    assert w.samples.shape == (3, 100)
    bf = A.waveform_from_array(torch.zeros(2, 10, dtype=torch.bfloat16), 22050)
    assert bf.samples.dtype == np.float32


@pytest.mark.parametrize(
    ("samples", "rate", "match"),
    [
        (np.array([0.0, np.nan]), 16000, "NaN or infinite"),
        (np.array([[0.0, np.inf]]), 16000, "NaN or infinite"),
        (np.zeros(0), 16000, "empty"),
        (np.zeros((1, 2, 0)), 16000, "empty"),
        (np.zeros((0, 2, 5)), 16000, "empty"),
        (np.zeros((2, 2, 2, 2)), 16000, "shape"),
        (np.zeros(10), 0, "sample rate"),
        (np.zeros(10), -8000, "sample rate"),
        (np.zeros(10), 44100.5, "sample rate"),
        (np.zeros(10), True, "sample rate"),
        (np.zeros(10), "44100", "sample rate"),
        (np.zeros((48000, 2)), 48000, "transpose"),
        (np.zeros(4, complex), 8000, "dtype"),
    ],
)
def test_waveform_from_array_errors(samples: np.ndarray, rate: object, match: str) -> None:
    with pytest.raises(AudioError, match=match):
        A.waveform_from_array(samples, rate, source="my-node-input")


def test_to_model_rate() -> None:
    mono = Waveform(_sine(16000, 1.0), 16000)
    out = A.to_model_rate(mono)
    assert out.dtype == np.float32 and np.shares_memory(out, mono.samples)
    stereo = Waveform(np.stack([np.ones(441, np.float32), np.zeros(441, np.float32)]), 44100)
    down = A.to_model_rate(stereo)
    assert abs(len(down) - 160) <= 1 and abs(float(np.median(down)) - 0.5) < 1e-3
    assert np.all(A.to_model_rate(Waveform(np.zeros((2, 4800), np.float32), 48000)) == 0)
    with pytest.raises(AudioError, match="NaN"):
        A.to_model_rate(Waveform(np.array([[0.0, np.nan]], np.float32), 16000, "x.wav"))


# ----------------------------------------------------------------------------- file formats


def _encode(
    path: Path, codec: str, rate: int, layout: str, fmt: str | None = None, seconds: float = 1.0
) -> int:
    """Write a 440 Hz sine with PyAV; returns the number of samples per channel written."""
    data = _sine(rate, seconds, channels=len(av.AudioLayout(layout).channels))
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout, options={"strict": "experimental"})
        for i in range(0, data.shape[1], 1000):
            block = np.ascontiguousarray(data[:, i : i + 1000])
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate, frame.pts = rate, i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return data.shape[1]


def _check_loaded(path: Path, rate: int, channels: int, n: int, tolerance: int) -> Waveform:
    w = A.load_audio(path)
    assert (w.sample_rate, w.channels) == (rate, channels)
    assert w.samples.dtype == np.float32 and w.samples.flags.c_contiguous
    assert abs(w.num_samples - n) <= tolerance, (w.num_samples, n)
    assert abs(_peak_hz(A.to_model_rate(w)) - 440.0) <= 2.0
    return w


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_subtypes(tmp_path: Path, subtype: str) -> None:
    data = _sine(44100, 0.5, channels=2)
    path = tmp_path / f"tone_{subtype}.wav"
    sf.write(path, data.T, 44100, subtype=subtype)
    w = _check_loaded(path, 44100, 2, data.shape[1], 0)
    bits = {"PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}.get(subtype, 32)
    assert np.abs(w.samples - data).max() <= 2.0 ** (1 - bits)
    assert np.abs(w.samples).max() <= 1.0


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 96000])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_wav_rates_and_channels(tmp_path: Path, rate: int, channels: int) -> None:
    data = _sine(rate, 0.5, channels=channels)
    path = tmp_path / "tone.wav"
    sf.write(path, data.T, rate, subtype="PCM_16")
    _check_loaded(path, rate, channels, data.shape[1], 0)


CODECS = [  # name, codec, rate, layout, container format, tolerance in samples (one codec frame)
    ("tone.mp3", "libmp3lame", 44100, "stereo", None, 1152),
    ("tone8k.mp3", "libmp3lame", 8000, "mono", None, 1152),
    ("tone22k.mp3", "libmp3lame", 22050, "mono", None, 1152),
    ("tone.flac", "flac", 96000, "5.1", None, 0),
    ("tone48.flac", "flac", 48000, "stereo", None, 0),
    ("tone.m4a", "aac", 48000, "stereo", None, 1024),
    ("tone51.m4a", "aac", 44100, "5.1", None, 1024),
    ("tone.aac", "aac", 22050, "mono", "adts", 2048),  # raw ADTS keeps encoder delay + padding
    ("tone.ogg", "vorbis", 44100, "stereo", None, 2048),
    ("tone.opus", "libopus", 48000, "stereo", None, 960),
    ("tone51.opus", "libopus", 48000, "5.1", None, 960),
    ("tone_mono.ogg", "libopus", 48000, "mono", "ogg", 960),
]


@pytest.mark.parametrize(
    ("name", "codec", "rate", "layout", "fmt", "tol"), CODECS, ids=[c[0] for c in CODECS]
)
def test_codecs(
    tmp_path: Path, name: str, codec: str, rate: int, layout: str, fmt: str | None, tol: int
) -> None:
    path = tmp_path / name
    n = _encode(path, codec, rate, layout, fmt)
    _check_loaded(path, rate, len(av.AudioLayout(layout).channels), n, tol)


def _write_video(path: Path, with_audio: bool) -> None:
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=44100, layout="stereo") if with_audio else None
        for i in range(10):
            image = np.full((48, 64, 3), i * 20, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if audio is not None:
            data = _sine(44100, 0.4, channels=2)
            frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 44100, 0
            for packet in [*audio.encode(frame), *audio.encode(None)]:
                out.mux(packet)


def test_audio_track_of_video(tmp_path: Path) -> None:
    path = tmp_path / "talk.mp4"
    _write_video(path, with_audio=True)
    _check_loaded(path, 44100, 2, int(0.4 * 44100), 1024)


# ----------------------------------------------------------------------------- errors


def _error_for(path: Path) -> AudioError:
    with pytest.raises(AudioError) as info:
        A.load_audio(path)
    message = str(info.value)
    assert path.name in message and "\n" not in message
    assert any(hint in message for hint in ("try again", "give ", "re-export"))  # what to do
    return info.value


def test_errors(tmp_path: Path) -> None:
    assert "not found" in str(_error_for(tmp_path / "missing.wav"))
    (tmp_path / "empty.wav").write_bytes(b"")
    assert "0 bytes" in str(_error_for(tmp_path / "empty.wav"))
    (tmp_path / "notes.wav").write_text("this is not audio at all\n" * 20)
    error = _error_for(tmp_path / "notes.wav")
    assert "not an audio" in str(error) and isinstance(error.__cause__, av.FFmpegError)
    silent = tmp_path / "silent.mp4"
    _write_video(silent, with_audio=False)
    assert "has no audio track" in str(_error_for(silent))
    assert "folder" in str(_error_for(tmp_path))


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("fuzz")
    sf.write(folder / "a.wav", _sine(16000, 0.3).T, 16000, subtype="PCM_16")
    _encode(folder / "a.mp3", "libmp3lame", 22050, "mono", seconds=0.3)
    return [(folder / "a.wav").read_bytes(), (folder / "a.mp3").read_bytes()]


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.integers(0, 1),
    cut=st.floats(0.0, 1.0),
    noise=st.binary(max_size=64),
    at=st.floats(0.0, 1.0),
    mode=st.sampled_from(["truncate", "corrupt", "random"]),
)
def test_fuzz_never_raw_errors(
    tmp_path: Path,
    valid_files: list[bytes],
    which: int,
    cut: float,
    noise: bytes,
    at: float,
    mode: str,
) -> None:
    """Whatever the bytes, load_audio returns a valid Waveform or raises AudioError."""
    data = valid_files[which]
    if mode == "truncate":
        blob = data[: int(len(data) * cut)]
    elif mode == "corrupt":
        pos = int(len(data) * at)
        blob = data[:pos] + noise + data[pos + len(noise) :]
    else:
        blob = noise
    path = tmp_path / ("fuzz.wav" if which == 0 else "fuzz.mp3")
    path.write_bytes(blob)
    try:
        w = A.load_audio(path)
    except AudioError as exc:
        assert path.name in str(exc)
        return
    assert w.samples.ndim == 2 and w.num_samples > 0 and w.sample_rate > 0
    assert w.samples.dtype == np.float32 and np.isfinite(w.samples).all()
