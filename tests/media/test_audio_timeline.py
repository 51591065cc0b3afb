"""Audio on the file's own timeline (``lipsync.media.audio`` / ``_audio_timeline``): a late start,
a hole, a video track that starts late, MP3 encoder delay and AAC padding, decoded as players
play them; the writer's streamed audio places it the same way; the probe reports it.

Inputs are built here with PyAV (``tests/clapper.py``): white flashes and 2 kHz beeps at the same
instants, so every beep must land on its flash, within one frame.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from clapper import FPS, RATE, add_audio, assert_on_flashes, audio_at_pts, beep_times, beeps, clapper, flash_times, write_audio
from conftest import SHARED

from lipsync.media._audio_timeline import Placer
from lipsync.media.audio import PlacedAudio, load_audio, to_model_rate
from lipsync.media.video import VideoWriter, iter_frames, probe
from lipsync.models.wav2lip.mel import frame_count_for_audio

CASES = SHARED / "cases"


def on_flashes(path: Path) -> None:
    """The loaded audio's beeps on the video's flashes, and the audio as long as the picture."""
    wave = load_audio(path)
    frames = list(iter_frames(path))
    assert_on_flashes(beep_times(wave.samples, wave.sample_rate), flash_times(frames))
    assert wave.num_samples == round(len(frames) / FPS * wave.sample_rate)


def test_a_late_audio_track_gets_silence_before_it(tmp_path: Path) -> None:
    path = clapper(tmp_path / "late.mp4", audio_from=0.3)
    on_flashes(path)
    wave = load_audio(path)
    assert not wave.samples[:, : round(0.23 * RATE)].any()  # silence, as players play it
    assert probe(path).audio_start == pytest.approx(0.3, abs=1024 / RATE)  # the header's start (priming before it)


def test_a_hole_in_the_audio_is_filled_with_silence_of_its_length(tmp_path: Path) -> None:
    path = clapper(tmp_path / "gap.mp4", drop=(1.8, 2.2))
    on_flashes(path)
    wave = load_audio(path)
    assert not wave.samples[:, round(1.9 * RATE) : round(2.2 * RATE)].any()
    (gap,) = probe(path).audio_gaps or [None]
    assert gap[0] == pytest.approx(1.8, abs=0.1) and gap[1] == pytest.approx(0.4, abs=0.05)
    with PlacedAudio(path) as placed:
        list(placed.blocks())
        assert [g for g, _ in placed.placement.gaps] == pytest.approx([gap[0]], abs=1 / RATE)


def test_audio_before_a_late_video_track_is_cut(tmp_path: Path) -> None:
    path = clapper(tmp_path / "late_video.mp4", video_from=0.48, flashes=(1.0, 2.6, 3.4), extra_beeps=(0.2,))
    on_flashes(path)  # the beep at 0.2 s (before the first frame) is gone
    assert load_audio(path).duration == pytest.approx(4.0 - 0.48)
    assert probe(path).audio_start == pytest.approx(-0.48)


def test_mp3_encoder_delay_and_padding_are_trimmed(tmp_path: Path) -> None:
    rate, length = 44100, 2 * 44100 + 123
    path = tmp_path / "voice.mp3"
    with av.open(str(path), "w") as container:
        write_audio(container, add_audio(container, rate, "libmp3lame"), beeps([0.5], 0.0, length / rate, rate), rate)
    wave = load_audio(path)
    assert wave.num_samples == length
    assert beep_times(wave.samples, rate) == pytest.approx([0.5], abs=0.002)


def test_aac_priming_and_padding_are_trimmed_as_the_m4a_declares(tmp_path: Path) -> None:
    rate = 44100
    path = tmp_path / "voice.m4a"
    with av.open(str(path), "w", format="ipod") as container:
        write_audio(container, add_audio(container, rate), beeps([0.5, 4.2], 0.0, 5.0, rate), rate)
    wave = load_audio(path)
    assert wave.num_samples == 5 * rate  # the decoder gives 5.016 s
    assert beep_times(wave.samples, rate) == pytest.approx([0.5, 4.2], abs=0.002)
    assert frame_count_for_audio(len(to_model_rate(wave)), FPS) == 125


def test_the_writer_streams_a_files_audio_on_the_same_timeline(tmp_path: Path) -> None:
    source = clapper(tmp_path / "late.mp4", audio_from=0.3, drop=(1.8, 2.2))
    frames = list(iter_frames(source))
    out = tmp_path / "out.mp4"
    with VideoWriter(out, FPS, audio=source) as writer:
        for frame in frames:
            writer.write(frame)
    samples, rate = audio_at_pts(out)
    assert_on_flashes(beep_times(samples, rate), flash_times(iter_frames(out)))


def test_a_frame_range_takes_the_audio_from_its_first_frame_on_the_placed_timeline(tmp_path: Path) -> None:
    source = clapper(tmp_path / "late.mp4", audio_from=0.3)
    frames = list(iter_frames(source))[40:]
    out = tmp_path / "tail.mp4"
    with VideoWriter(out, FPS, audio=source, audio_start=40 / FPS) as writer:
        for frame in frames:
            writer.write(frame)
    samples, rate = audio_at_pts(out)
    assert_on_flashes(beep_times(samples, rate), flash_times(iter_frames(out)))


def test_the_placer_keeps_time_base_jitter_contiguous_and_cuts_overlaps() -> None:
    ones = np.ones((1, 10), np.float32)
    placer = Placer(1000, 1, origin=0.0, end=None, tick=0.001)
    out = [b for t in (0.0, 0.0105, 0.019, 0.050) for b in placer.place(ones, t)]  # 0.5 ms late, 1 ms early, a hole
    lengths = [b.shape[1] for b in out]
    assert lengths == [10, 10, 10, 20, 10] and not out[3].any()
    assert placer.placement.gaps == [(0.030, 0.020)]
    overlap = Placer(1000, 1, origin=0.0, end=0.025)
    got = np.concatenate([b for t in (0.0, 0.005, 0.020) for b in overlap.place(ones * t, t)], axis=1)
    assert got.shape[1] == 25 and overlap.placement.trimmed == pytest.approx(0.005)


def test_broken_timestamps_restart_the_clock_instead_of_adding_or_dropping_sound() -> None:
    ones = np.ones((1, 100), np.float32)
    placer = Placer(1000, 1, origin=0.0, end=None)
    times = (0.0, 0.1, 500.0, 500.1, 3.0, 3.1)  # a leap of 8 minutes, then a reset back to 3 s
    got = np.concatenate([b for t in times for b in placer.place(ones, t)], axis=1)
    assert got.shape[1] == 600 and got.all()
    assert placer.placement.resets == 2 and placer.placement.gaps == []
    late = Placer(1000, 1, origin=0.0, end=None)  # a first timestamp hours away: not hours of silence
    assert sum(b.shape[1] for b in late.place(ones, 7200.0)) == 100 and late.placement.start == 0.0


def test_audio_before_the_picture_is_cut_block_by_block() -> None:
    ones = np.ones((1, 100), np.float32)
    placer = Placer(1000, 1, origin=5.0, end=None)  # the picture starts 5 s into the sound
    got = [b for t in np.arange(0, 5.3, 0.1) for b in placer.place(ones, float(t))]
    assert sum(b.shape[1] for b in got) == 300 and placer.placement.start == pytest.approx(-5.0)
    assert placer.placement.resets == 0


@pytest.mark.skipif(not CASES.exists(), reason="shared cases missing")
def test_shared_cases_audio_late_and_m4a_padding() -> None:
    late = load_audio(CASES / "audio_track_starts_late" / "clapper_audio_late.mp4")
    assert late.duration == pytest.approx(4.0)
    assert beep_times(late.samples, late.sample_rate) == pytest.approx([0.6, 3.4], abs=1 / FPS)
    m4a = load_audio(CASES / "aac_padding_m4a" / "voice_5s.m4a")
    wav = load_audio(CASES / "aac_padding_m4a" / "voice_5s.wav")
    assert m4a.num_samples == wav.num_samples == 220500
