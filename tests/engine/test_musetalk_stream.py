"""MuseTalk on long inputs through the streaming engine (``lipsync_video``), with MuseTalk's real
generator and audio code around tiny stand-in networks (the published ones take seconds a frame):

- ten minutes of audio on a 64x64 clip hold flat memory: the process's peak RSS while the job
  runs does not grow with the audio's length, and Python's own allocations stay bounded;
- a looping clip's frames are VAE-encoded once each, however often they repeat;
- at 29.97 fps (30000/1001) frame i reads the audio at i·1001/30000 s, still at the end of ten
  minutes (the original's int(fps) = 29 reads 20 s further into the audio there);
- a face restorer takes MuseTalk's 256² faces like Wav2Lip's, inside the mouth mask only.

Marker ``slow`` for the two ten-minute jobs:  python -m pytest -m slow tests/engine/test_musetalk_stream.py
"""

from __future__ import annotations

import math
import tracemalloc
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="MuseTalk needs the musetalk extra (transformers)")

from conftest import SHARED, need

from lipsync.engine.lipsync import lipsync_video
from lipsync.media.video import VideoWriter
from lipsync.models.musetalk import MuseTalkGenerator
from lipsync.options import LipSyncOptions
from lipsync.types import Box, Waveform

FIX = SHARED / "fixtures" / "musetalk_reference"
SIZE = 64
BOX = Box(top=16, bottom=52, left=14, right=50)


class TinyVAE(torch.nn.Module):
    """AutoencoderKL's call shapes at almost no cost: 256² RGB ↔ 4×32² latents."""

    config = SimpleNamespace(block_out_channels=[8, 8])

    def __init__(self) -> None:
        super().__init__()
        self.enc = torch.nn.Conv2d(3, 8, 1)
        self.dec = torch.nn.Conv2d(4, 3, 1)

    def encode(self, x: torch.Tensor) -> SimpleNamespace:
        moments = self.enc(torch.nn.functional.avg_pool2d(x, 8))
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=moments[:, :4]))

    def decode(self, z: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(sample=torch.nn.functional.interpolate(torch.tanh(self.dec(z)), scale_factor=8))


class TinyUNet(torch.nn.Module):
    """UNet2DConditionModel's call: masked + reference latents and audio tokens → 4 latent channels."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = torch.nn.Conv2d(8, 4, 1)
        self.audio = torch.nn.Linear(384, 4)

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor) -> SimpleNamespace:
        cond = self.audio(encoder_hidden_states.mean(1))[:, :, None, None]
        return SimpleNamespace(sample=self.mix(latents) + cond)


class PooledEncoder(torch.nn.Module):
    """whisper's encoder call (features (1, 80, 3000) → five (1, 1500, 384) hidden states), cheaply."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(80, 384)

    def forward(self, features: torch.Tensor, output_hidden_states: bool = True) -> SimpleNamespace:
        h = self.proj(torch.nn.functional.avg_pool1d(features, 2).transpose(1, 2))
        return SimpleNamespace(hidden_states=tuple(h * (k + 1) for k in range(5)))


def tiny_musetalk() -> MuseTalkGenerator:
    from transformers import WhisperFeatureExtractor

    torch.manual_seed(0)
    extractor = WhisperFeatureExtractor.from_pretrained(str(need(FIX / "models" / "whisper")))
    return MuseTalkGenerator(TinyUNet().eval(), TinyVAE().eval(), PooledEncoder().eval(), extractor)


def clip(path: Path, frames: int, fps: Fraction) -> Path:
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    with VideoWriter(path, fps, lossless=True) as writer:
        for i in range(frames):
            writer.write(np.roll(texture, i, axis=1))
    return path


def voice(seconds: float) -> Waveform:
    rng = np.random.default_rng(1)
    return Waveform((rng.standard_normal((1, round(seconds * 16000))) * 0.05).astype(np.float32), 16000)


def _rss_peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise KeyError("VmHWM")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc peak-RSS reset")
def test_ten_minutes_of_audio_stream_in_flat_memory(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    source = clip(tmp_path / "loop.mkv", 40, Fraction(25))
    options = LipSyncOptions.of(box=BOX, length_policy="loop")
    growth, python_peak = {}, {}
    for minutes in (2, 10):
        generator = tiny_musetalk()
        Path("/proc/self/clear_refs").write_text("5")
        before = _rss_peak_kb()
        tracemalloc.start()
        try:
            result = lipsync_video(source, voice(60 * minutes), tmp_path / f"out_{minutes}.mp4", generator, options)
            python_peak[minutes] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        growth[minutes] = (_rss_peak_kb() - before) * 1024
        print(f"{minutes} min of audio, {result.frames} frames: peak RSS growth {growth[minutes] / 1e6:.0f} MB, "
              f"Python peak {python_peak[minutes] / 1e6:.0f} MB, {result.seconds:.0f} s")
        assert result.frames == 1500 * minutes and result.frames_with_face == result.frames
        assert generator.encoded_crops == 40  # the loop's 40 frames, each encoded once
    # Five times the audio: the peak grows by less than a few MB (the voice itself is 38 MB at
    # 16 kHz float32 for ten minutes and is held whole; its whisper states are not).
    assert growth[10] < growth[2] + 64e6, f"RSS peak grew from {growth[2] / 1e6:.0f} MB to {growth[10] / 1e6:.0f} MB"
    assert python_peak[10] < python_peak[2] + 64e6, python_peak


@pytest.mark.slow
def test_29_97_fps_stays_in_sync_over_ten_minutes(tmp_path: Path) -> None:
    """The last frames of a ten-minute job at 30000/1001 fps (rendered alone with ``frames=``,
    exactly as a whole run renders them) get the windows that start at i·1001/30000 s."""
    fps = Fraction(30000, 1001)
    source = clip(tmp_path / "ntsc.mkv", 30, fps)
    generator = tiny_musetalk()
    wave = voice(600.0)
    windows_seen: list[np.ndarray] = []
    original_generate = MuseTalkGenerator.generate

    def spy(self, crops_bgr, features, batch_size, *, reference=False):
        windows_seen.append(np.array(features))
        return original_generate(self, crops_bgr, features, batch_size, reference=reference)

    generator.generate = spy.__get__(generator)
    count = math.ceil(600 * fps)  # 17983 frames cover the ten minutes
    first = count - 12
    result = lipsync_video(source, wave, tmp_path / "tail.mp4", generator,
                           LipSyncOptions.of(box=BOX, length_policy="loop"), frames=(first, count))
    assert result.frames == 12
    got = np.concatenate(windows_seen).reshape(12, 10, 5, 384)
    audio = generator.prepare_audio(wave.samples[0])
    for k, i in enumerate(range(first, count)):
        at = math.floor(Fraction(i * 1001, 30000) * 50)  # 50 whisper positions a second
        # token rows 4…: the frame's own position sits 2·ceil(50/fps) = 4 positions into its window
        assert np.array_equal(got[k, 4], audio.positions(at, at + 1)[0]), f"frame {i}"
    # The original's rule (int(fps) = 29) reads the last frame 20.08 s (1004 positions) later in the audio.
    late = audio.window_starts(fps, count - 1, 1, reference=True)[0] + 4
    assert late - math.floor(Fraction((count - 1) * 1001, 30000) * 50) == 1004


class Dimmer(torch.nn.Module):
    """Stands in for a face restorer (RestoreFormer's call): records the sizes, halves the contrast."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.sizes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        self.sizes.append(tuple(x.shape))
        return (x * 0.5,)


def test_restoration_applies_to_musetalks_faces_inside_the_mask(tmp_path: Path) -> None:
    from lipsync.media.video import iter_frames
    from lipsync.restore import FaceRestorer

    source = clip(tmp_path / "in.mkv", 3, Fraction(25))
    wave = voice(0.12)
    net = Dimmer()
    restorer = FaceRestorer(SimpleNamespace(architecture=SimpleNamespace(id="RestoreFormer"), model=net,
                                            to=lambda device: None), "dimmer")
    outputs = {}
    for label, extra in (("plain", {}), ("restored", {"restorer": restorer})):
        out = tmp_path / f"{label}.mkv"
        lipsync_video(source, wave, out, tiny_musetalk(), LipSyncOptions.of(box=BOX, lossless=True), **extra)
        outputs[label] = list(iter_frames(out))
    assert net.sizes and all(size[1:] == (3, 512, 512) for size in net.sizes)  # MuseTalk's 256² faces, grown
    region_middle = (BOX.top + BOX.bottom + 10) // 2  # the region reaches 10 px below the box
    for plain, restored, src in zip(outputs["plain"], outputs["restored"], iter_frames(source)):
        assert np.array_equal(restored[:region_middle], src[:region_middle])
        assert not np.array_equal(restored[region_middle:], plain[region_middle:]), "restoration had no effect"
