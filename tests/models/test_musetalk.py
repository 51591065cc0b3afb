"""MuseTalk 1.5 model layer against the golden fixture (``shared/fixtures/musetalk_reference``).

Stage by stage: whisper features, audio prompts, positional table, crops, latents, UNet, decode,
paste-size faces; then the product's own rules (exact fps, whole audio, bounded memory, latent
cache) and the file checks (published shapes, wrong or missing files).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import tracemalloc
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="MuseTalk needs the musetalk extra (diffusers)")
pytest.importorskip("transformers", reason="MuseTalk needs the musetalk extra (transformers)")

import torch  # noqa: E402

from conftest import SHARED, need  # noqa: E402
from lipsync.errors import DependencyError, ModelError  # noqa: E402
from lipsync.models.base import AudioFeatures, Generator  # noqa: E402
from lipsync.models.musetalk import (  # noqa: E402
    MUSETALK_CROP,
    MuseTalkParts,
    WhisperAudio,
    crop_face,
    face_to_region,
    find_parts,
    is_musetalk_folder,
    load_musetalk,
    pe_table,
)
from lipsync.models.musetalk import loading  # noqa: E402
from lipsync.types import Box  # noqa: E402

FIX = SHARED / "fixtures" / "musetalk_reference"
BOX = Box(top=130, bottom=372, left=160, right=356)  # the fixture's x1,y1,x2,y2 = 160,130,356,372


def close(actual, expected, tol=1e-4):
    """Max abs difference relative to the expected array's max magnitude."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    err = np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12)
    assert err <= tol, f"relative error {err:.3g} > {tol}"
    return err


@pytest.fixture(scope="module")
def gen():
    torch.set_num_threads(2)
    return load_musetalk(need(FIX / "models"), device="cpu")


@pytest.fixture(scope="module")
def exp_a():
    return dict(np.load(need(FIX / "expected.npz")))


@pytest.fixture(scope="module")
def exp_b():
    return dict(np.load(need(FIX / "expected_audio_longer.npz")))


@pytest.fixture(scope="module")
def frames():
    av = pytest.importorskip("av")
    with av.open(str(need(FIX / "inputs" / "face_2s.mkv"))) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(need(path))) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768


# ---- the original computation, stage by stage -------------------------------------------------

def test_generator_interface(gen):
    assert isinstance(gen, Generator)
    assert gen.family == "musetalk" and gen.name == "musetalkV15"
    assert gen.crop == MUSETALK_CROP
    assert (gen.crop.size, gen.crop.bottom_margin, gen.crop.masked_from, gen.crop.interpolation) == (256, 10, 0.5, "lanczos")
    assert "commercial" in gen.licence
    assert gen.device == torch.device("cpu") and gen.dtype == torch.float32
    assert gen.memory_estimate(8) > gen.memory_estimate(1) > sum(
        p.numel() * 4 for m in (gen.unet, gen.vae, gen.whisper_encoder) for p in m.parameters())


def test_whisper_input_features(gen, exp_a, exp_b):
    wav_a = read_wav(FIX / "inputs" / "speech_2s.wav")
    assert np.array_equal(wav_a, exp_a["audio_f32"])
    for exp in (exp_a, exp_b):
        audio = gen.prepare_audio(exp["audio_f32"])
        assert isinstance(audio, AudioFeatures)
        close(audio.input_features(0), exp["input_features"])


def test_audio_prompts_case_a(gen, exp_a):
    audio = gen.prepare_audio(exp_a["audio_f32"])
    assert audio.frame_count(Fraction(25)) == audio.reference_frame_count(Fraction(25)) == 50
    for reference in (False, True):
        assert [s + 4 for s in audio.window_starts(25, 0, 50, reference=reference)] == exp_a["audio_index"].tolist()
        windows = audio.windows(Fraction(25), 0, 50, reference=reference)
        assert windows.shape == (50, 50, 384) and windows.dtype == np.float32
        close(windows, exp_a["whisper_chunks"])
    # A job over frames [20, 30) takes exactly the windows of the whole run there.
    assert np.array_equal(audio.windows(25, 20, 10), audio.windows(25, 0, 50)[20:30])
    # The front padding is zeros in hidden-state space (frame 0: positions -4..-1).
    assert not audio.windows(25, 0, 1)[0, :20].any()


def test_audio_prompts_case_b(gen, exp_b):
    audio = gen.prepare_audio(exp_b["audio_f32"])
    assert audio.reference_frame_count(25) == 75 and audio.frame_count(25) == 75
    close(audio.positions(0, 150), exp_b["whisper_hidden"])
    windows = audio.windows(25, 0, 75, reference=True)
    close(windows[exp_b["chunk_idx"]], exp_b["whisper_chunks"])
    close(audio.windows(25, 0, 75)[exp_b["chunk_idx"]], exp_b["whisper_chunks"])
    # Past the last position (150) the window reads zeros: frame 74 starts at 148 - 4 = 144.
    assert not windows[74].reshape(10, 5, 384)[6:].any() and windows[74].reshape(10, 5, 384)[5].any()


def test_pe_table(exp_a):
    table = pe_table()
    assert table.shape == (50, 384) and table.dtype == np.float32
    assert np.array_equal(table, exp_a["pe_table"])
    assert np.array_equal(exp_a["whisper_chunks"][:8] + table, exp_a["pe_out"])


def test_frames_and_crops(frames, exp_a):
    meta = json.loads((FIX / "meta.json").read_text())
    assert [hashlib.md5(f.tobytes()).hexdigest() for f in frames] == meta["frames_bgr_md5"]
    region = MUSETALK_CROP.region(BOX, frames[0].shape[:2])
    assert [region.left, region.top, region.right, region.bottom] == exp_a["paste_box"].tolist()
    crops = np.stack([crop_face(frames[i], BOX, MUSETALK_CROP) for i in exp_a["img_idx"]])
    assert np.array_equal(crops, exp_a["crops"])


def test_latents(gen, exp_a):
    pick = [0, 3, 9]  # frames 0, 3, 49
    latents = gen.encode_crops(exp_a["crops"][pick]).numpy()
    idx = exp_a["img_idx"][pick]
    close(latents[:, :4], exp_a["masked_latents"][idx])
    close(latents[:, 4:], exp_a["ref_latents"][idx])
    close(latents[:2], exp_a["unet_in"][[0, 3]])


def test_unet_and_decode(gen, exp_a, exp_b):
    pred = gen.unet_forward(torch.from_numpy(exp_a["unet_in"]), exp_a["whisper_chunks"][:8]).numpy()
    close(pred, exp_a["pred_latents"][:8])
    # Case B: output 50 re-uses frame 49's latents with the next audio window.
    unet_in = exp_b["unet_in"]
    chunks = dict(zip(exp_b["chunk_idx"].tolist(), exp_b["whisper_chunks"]))
    out_idx = exp_b["img_idx"].tolist()
    pred_b = gen.unet_forward(torch.from_numpy(unet_in), np.stack([chunks[i] for i in out_idx])).numpy()
    close(pred_b, exp_b["pred_latents"][out_idx])
    recon = gen.decode_latents(torch.from_numpy(exp_a["pred_latents"][exp_a["img_idx"][:4]]))
    assert recon.dtype == np.uint8 and np.abs(recon.astype(int) - exp_a["recon"][:4]).max() <= 1


def test_generate_end_to_end(gen, exp_a):
    """Crops + windows through ``generate``: the original's decoded faces within one level."""
    audio = gen.prepare_audio(exp_a["audio_f32"])
    pick = [0, 7, 9]  # frames 0, 7 and 49
    idx = exp_a["img_idx"][pick]
    windows = audio.windows(25, 0, 50)[idx]
    faces = gen.generate(exp_a["crops"][pick], windows, batch_size=2)
    assert faces.shape == (3, 3, 256, 256) and faces.dtype == np.float32
    assert 0 <= faces.min() and faces.max() <= 1
    recon = gen.to_uint8_reference(faces)
    diff = np.abs(recon.astype(int) - exp_a["recon"][pick])
    assert diff.max() <= 1, f"max {diff.max()} levels"
    # The uint8 round trip is exact: what generate returns is the decoded bytes / 255.
    assert np.array_equal(gen.to_uint8_reference(recon.transpose(0, 3, 1, 2) / np.float32(255)), recon)
    paste = MUSETALK_CROP.region(BOX, (512, 512))
    res = np.stack([face_to_region(r, paste) for r in recon])
    assert res.shape == exp_a["res_frame"][pick].shape
    assert np.abs(res.astype(int) - exp_a["res_frame"][pick]).max() <= 1


def test_batches_and_latent_cache(gen, exp_a):
    """Repeated crops (ping-pong) are encoded once; a frame's face does not depend on its batch."""
    crops = exp_a["crops"][[0, 1, 1, 0]]
    windows = exp_a["whisper_chunks"][[0, 1, 2, 3]]
    gen._latents.clear()
    before = gen.encoded_crops
    one_by_one = gen.generate(crops, windows, batch_size=1)
    assert gen.encoded_crops - before == 2
    gen._latents.clear()
    together = gen.generate(crops, windows, batch_size=4)
    assert gen.encoded_crops - before == 4  # two more after the cache was cleared, none twice
    assert np.array_equal(one_by_one, together)


# ---- the product's rules ------------------------------------------------------------------------

def test_frame_counts_cover_the_whole_audio(gen):
    from lipsync.models.wav2lip.mel import frame_count_for_audio

    for samples, fps in [(32480, Fraction(25)), (32000, Fraction(25)), (160000, Fraction(30000, 1001)), (1, Fraction(25))]:
        audio = gen.prepare_audio(np.zeros(samples, np.float32))
        assert audio.frame_count(fps) == frame_count_for_audio(samples, fps)
        assert audio.reference_frame_count(fps) == math.floor(samples / 16000 * int(fps))
    audio = gen.prepare_audio(np.zeros(32480, np.float32))  # 2.03 s
    assert (audio.frame_count(25), audio.reference_frame_count(25)) == (51, 50)
    tail = audio.windows(25, 50, 1)  # the frame the original drops: its window is real audio + zeros
    assert tail.shape == (1, 50, 384)


def test_exact_fps_window(gen):
    """At 30000/1001 fps frame i reads the audio at i·1001/30000 s; the original (int fps = 29) drifts."""
    rng = np.random.default_rng(0)
    audio = gen.prepare_audio(rng.standard_normal(16000 * 12).astype(np.float32) * 0.1)
    fps = Fraction(30000, 1001)
    frames = [0, 1, 29, 299, 359]
    for i in frames:
        position = math.floor(Fraction(i * 1001, 30000) * 50)  # 50 positions a second
        window = audio.windows(fps, i, 1)[0].reshape(10, 5, 384)
        assert np.array_equal(window[4], audio.positions(position, position + 1)[0])
    # The original's rule reads frame 299 (9.976 s on screen) at 299/29 s = 10.31 s.
    ref = audio.window_starts(fps, 299, 1, reference=True)[0] + 4
    assert ref == math.floor(299 * 50 / 29) and ref - math.floor(Fraction(299 * 1001, 30000) * 50) == 17  # 340 ms
    # A positive offset moves the mouth later: frame i then reads earlier audio.
    assert audio.window_starts(fps, 100, 1, offset_ms=40)[0] == audio.window_starts(fps, 100, 1)[0] - 2


def whole_computation(encoder, extractor, wav, fps=25):
    """The original's flow in one go (every segment encoded, concatenated, trimmed, padded)."""
    states = []
    for lo in range(0, len(wav), 480000):
        feats = extractor(wav[lo:lo + 480000], sampling_rate=16000, return_tensors="pt").input_features
        with torch.inference_mode():
            states.append(torch.stack(encoder(feats, output_hidden_states=True).hidden_states, dim=2))
    whole = torch.cat(states, 1)[0, :math.floor(len(wav) / 16000 * 50)].numpy()
    pad = math.ceil(50 / fps)
    whole = np.concatenate([np.zeros((2 * pad, 5, 384), np.float32), whole, np.zeros((6 * pad, 5, 384), np.float32)])
    count = math.floor(len(wav) / 16000 * fps)
    return np.stack([whole[math.floor(i * 50 / fps):][:10].reshape(50, 384) for i in range(count)])


def test_windows_across_segment_boundaries(gen):
    rng = np.random.default_rng(1)
    wav = (rng.standard_normal(16000 * 65) * 0.1).astype(np.float32)
    expected = whole_computation(gen.whisper_encoder, gen.feature_extractor, wav)
    audio = WhisperAudio(wav, gen.whisper_encoder, gen.feature_extractor, cache_segments=2)
    got = np.concatenate([audio.windows(25, first, 25) for first in range(0, len(expected), 25)])
    assert np.array_equal(got, expected[:len(got)]) and len(got) == len(expected)
    assert audio.encoded_segments == 3  # each segment once, in order
    # The windows that straddle 30 s and 60 s (positions 2i-4 … 2i+5 across 1500 or 3000) were
    # asked for in two batches each, split at frames 750 and 1500.
    straddling = [i for i in range(len(expected)) if any(0 < 1500 * k - (2 * i - 4) <= 9 for k in (1, 2))]
    assert straddling == [748, 749, 750, 751, 1498, 1499, 1500, 1501]


class PooledEncoder(torch.nn.Module):
    """A cheap stand-in for whisper's encoder (same call and output shapes): 10 minutes of audio
    through the real one takes ~40 s here, and the caching under test does not depend on it."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(80, 384)

    def forward(self, features, output_hidden_states=True):
        h = self.proj(torch.nn.functional.avg_pool1d(features, 2).transpose(1, 2))
        return type("Out", (), {"hidden_states": tuple(h * (k + 1) for k in range(5))})


def test_long_audio_bounded_memory(gen):
    """Ten minutes, window by window: at most a few 30 s segments of hidden states are ever held."""
    torch.manual_seed(0)
    encoder = PooledEncoder().eval()
    rng = np.random.default_rng(2)
    wav = (rng.standard_normal(16000 * 600) * 0.05).astype(np.float32)
    audio = WhisperAudio(wav, encoder, gen.feature_extractor)
    count = audio.frame_count(25)
    assert count == 15000
    segment_bytes = 1500 * 5 * 384 * 4
    tracemalloc.start()
    try:
        checks = {}
        for first in range(0, count, 250):
            windows = audio.windows(25, first, min(250, count - first))
            assert len(audio.cached_segments) <= 3
            if first in (7250, 7500, 14750):
                checks[first] = windows
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert audio.encoded_segments == 20  # each segment encoded once
    # Measured ~81 MB: 3 cached segments (35 MB), one 250-frame batch of windows (19 MB), the
    # feature extractor's temporaries. All 20 segments' states alone would be 230 MB.
    assert peak < 10 * segment_bytes, f"peak {peak / 1e6:.0f} MB"
    # Windows across the 5-minute boundary (frames 7498-7501) equal the original's whole computation
    # there (which only sees the two segments around it: segments are encoded alone).
    expected = whole_computation(encoder, gen.feature_extractor, wav[9 * 480000:11 * 480000])
    assert np.array_equal(np.concatenate([checks[7250], checks[7500]]), expected[500:1000])
    tail = whole_computation(encoder, gen.feature_extractor, wav[18 * 480000:])  # the last minute, frames 13500…
    assert np.array_equal(checks[14750], tail[1250:1500])


# ---- files -----------------------------------------------------------------------------------------

def test_published_layout_shapes():
    """The full published configs build models whose names and shapes are the published files'."""
    shapes = json.loads(need(FIX / "published_shapes.json").read_text())
    path = Path("published")
    with torch.device("meta"):
        unet = loading.build_unet(shapes["unet"]["config"], path)
        vae = loading.build_vae(shapes["vae"]["config"], path)
        encoder = loading.build_whisper_encoder(shapes["whisper"]["config"], path)

    def named(module, prefix=""):
        return {prefix + k: list(v.shape) for k, v in module.state_dict().items()}

    assert named(unet) == shapes["unet"]["params"]
    assert sum(p.numel() for p in unet.parameters()) == shapes["unet"]["num_params"] == 849947844
    assert named(vae) == shapes["vae"]["params"]
    whisper = {k: v for k, v in shapes["whisper"]["params"].items() if k.startswith("model.encoder.")}
    assert named(encoder, "model.encoder.") == whisper
    assert sum(p.numel() for p in encoder.parameters()) == shapes["whisper"]["encoder_num_params"]
    # The .bin's legacy attention names pass the loader's rename and check.
    legacy = dict(shapes["vae"]["params"])
    for new, old in shapes["vae"]["legacy_names"].items():
        legacy[old] = legacy.pop(new)
    state = {k: torch.empty(v, device="meta") for k, v in legacy.items()}
    loading.check_state(vae, loading.rename_legacy_vae_keys(state), path, "the VAE")
    unet_state = {k: torch.empty(v, device="meta") for k, v in shapes["unet"]["params"].items()}
    loading.check_state(unet, unet_state, path, "the UNet")


def copy_layout(tmp_path: Path) -> Path:
    import shutil

    root = tmp_path / "models"
    shutil.copytree(need(FIX / "models"), root)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root


def test_folder_detection_and_missing_parts(tmp_path):
    root = copy_layout(tmp_path)
    assert is_musetalk_folder(root) and not is_musetalk_folder(tmp_path)
    parts = find_parts(root)
    assert parts == MuseTalkParts(root / "musetalkV15" / "unet.pth", root / "musetalkV15" / "musetalk.json",
                                  root / "sd-vae", root / "whisper")
    for rel in ["whisper/preprocessor_config.json", "sd-vae/diffusion_pytorch_model.bin", "musetalkV15/musetalk.json"]:
        (root / rel).rename(root / (rel + ".away"))
        with pytest.raises(ModelError, match=rel.split("/")[-1].replace(".", r"\.")):
            load_musetalk(root, "cpu")
        assert not is_musetalk_folder(root)
        (root / (rel + ".away")).rename(root / rel)
    (root / "musetalkV15" / "unet.pth").rename(tmp_path / "unet.pth")
    (root / "musetalk").mkdir()
    (root / "musetalk" / "pytorch_model.bin").write_bytes(b"v1.0")
    with pytest.raises(ModelError, match=r"1\.0.*musetalk/pytorch_model\.bin"):
        load_musetalk(root, "cpu")


def test_wrong_models_are_refused(tmp_path):
    root = copy_layout(tmp_path)
    cfg_path = root / "musetalkV15" / "musetalk.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "in_channels": 4, "cross_attention_dim": 768}))
    with pytest.raises(ModelError, match=r"musetalk\.json.*'in_channels': 4.*768"):
        load_musetalk(root, "cpu")
    cfg_path.write_text(json.dumps({**cfg, "block_out_channels": [16, 32, 48, 64]}))
    with pytest.raises(ModelError, match=r"unet\.pth is not the UNet.*shape"):
        load_musetalk(root, "cpu")
    cfg_path.write_text(json.dumps(cfg))
    vae_path = root / "sd-vae" / "config.json"
    vae = json.loads(vae_path.read_text())
    vae_path.write_text(json.dumps({**vae, "latent_channels": 16}))
    with pytest.raises(ModelError, match=r"sd-vae/config\.json.*'latent_channels': 16"):
        load_musetalk(root, "cpu")
    vae_path.write_text(json.dumps(vae))
    (root / "sd-vae" / "diffusion_pytorch_model.bin").write_bytes(b"truncated")
    with pytest.raises(ModelError, match=r"diffusion_pytorch_model\.bin"):
        load_musetalk(root, "cpu")


def test_missing_extra_names_the_pip_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(DependencyError, match=r'pip install "comfyui-resync\[musetalk\]"'):
        loading.build_unet({"in_channels": 8, "out_channels": 4, "cross_attention_dim": 384}, Path("x"))
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(DependencyError, match="transformers"):
        loading.build_whisper_encoder({"d_model": 384}, Path("x"))
