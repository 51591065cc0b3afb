"""The lip-sync nodes through execute(), with the fake host, a fake face detector and a tiny
network standing in for Wav2Lip (same inputs and outputs, microseconds per face).

The graph (Load Video -> Audio To Mel -> Detect Faces -> Lip-Sync Generate -> Composite) must
give the very frames the library's streaming pipeline gives, in both compositing modes.
"""

from __future__ import annotations

import io as bytes_io
import json
import shutil
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from fakehost import host  # noqa: F401  (fixture)
from torch import nn

from lipsync.engine.length import sequence_frames
from lipsync.types import Detection, Waveform
from lipsync.media.video import VideoWriter

H, W, FPS = 96, 128, 25
BOX = (20.0, 10.0, 84.0, 70.0)  # x1 y1 x2 y2 of the fake detection
MARKS = np.array([[38, 30], [66, 30], [52, 44], [42, 58], [62, 58]], np.float32)


class TinyWav2Lip(nn.Module):
    """Wav2Lip's signature: mel (B, 1, 80, 16), faces (B, 6, 96, 96) -> (B, 3, 96, 96) in (0, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Conv2d(6, 3, 3, padding=1)
        torch.manual_seed(0)
        nn.init.normal_(self.mix.weight, std=0.3)

    def forward(self, mel: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mix(faces) + mel.mean(dim=(1, 2, 3))[:, None, None, None])


class FakeDetector:
    name = "fake"

    def __init__(self, faceless: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.faceless, self.calls = faceless, 0

    def detect(self, frame: np.ndarray) -> list[Detection]:
        index, self.calls = self.calls, self.calls + 1
        return [] if index in self.faceless else [Detection(*BOX, score=0.9, landmarks=MARKS)]


def textured(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def write_source(path: Path, frames: int) -> Path:
    with VideoWriter(path, FPS, lossless=True) as writer:
        for i in range(frames):
            writer.write(textured(i))
    return path


def speech(seconds: float, rate: int = 22050) -> Waveform:
    t = np.arange(round(seconds * rate)) / rate
    x = np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return Waveform(np.stack([x, 0.5 * x]).astype(np.float32), rate)


def audio_dict(wave: Waveform) -> dict:
    return {"waveform": torch.from_numpy(wave.samples)[None], "sample_rate": wave.sample_rate}


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.fixture
def pack(host, monkeypatch):
    """The host plus the fakes wired in: detector, tiny network as a RESYNC_WAV2LIP value."""
    root = host.pack.__name__
    detector = FakeDetector()
    for module in ("nodes.faces", "lipsync.engine.lipsync"):
        monkeypatch.setattr(sys.modules[f"{root}.{module}"], "create_detector", lambda name, models_dir=None: detector)
    patcher = sys.modules["comfy.model_patcher"].ModelPatcher(TinyWav2Lip().eval(), "cpu", "cpu")
    host.model = sys.modules[f"{root}.nodes.model"].Wav2LipModel("tiny", patcher=patcher)
    host.detector = detector
    host.stages = sys.modules[f"{root}.lipsync.engine.graph"]
    return host


@pytest.mark.parametrize("policy", ["auto", "trim", "loop", "pingpong", "freeze"])
@pytest.mark.parametrize(("n_source", "n_out"), [(1, 4), (5, 3), (5, 5), (4, 13), (2, 7)])
def test_sequence_indices_follow_the_streaming_length_policies(pack, policy, n_source, n_out) -> None:
    def open_frames(skip: int, cap: int):
        return iter(range(skip, n_source if cap == 0 else min(n_source, skip + cap)))

    streamed = list(sequence_frames(open_frames, n_out, policy))
    assert pack.stages.sequence_indices(n_source, n_out, policy).tolist() == streamed


def test_audio_to_mel_covers_the_audio_or_the_given_frame_count(pack) -> None:
    audio = audio_dict(speech(1.0))
    mel = pack.run("ReSyncAudioToMel", audio=audio, fps=25.0).args[0]
    assert mel.windows.shape == (25, 80, 16) and mel.audio_frames == 25 and mel.length_policy == "auto"
    options = {"frame_count": 40, "length_policy": "loop", "offset_ms": 40.0}
    fixed = pack.run("ReSyncAudioToMel", audio=audio, fps=25.0, **options).args[0]
    assert len(fixed) == 40 and fixed.audio_frames == 25 and fixed.offset_ms == 40.0
    assert np.all(fixed.windows[36:] == -4.0)  # past the audio: silence
    assert "out of range" in pack.validate("ReSyncAudioToMel", fps=0.0)


def test_detect_faces_tracks_every_frame_and_draws_a_preview(pack) -> None:
    images = torch.from_numpy(np.stack([textured(i) for i in range(6)])).float() / 255
    pack.detector.faceless = {3}
    track, preview = pack.run("ReSyncDetectFaces", images=images, missing_face="hold").args
    assert len(track) == 6 and track.frame_size == (H, W) and track.detector == "fake"
    assert track.faces[0].box.as_tuple() == (10, 80, 20, 84)  # pad_bottom 10
    assert [f.detected for f in track.faces] == [True, True, True, False, True, True]
    assert tuple(preview.shape) == (6, H, W, 3)
    assert torch.allclose(preview[0, 10, 40], torch.tensor([0.0, 220 / 255, 0.0]))  # green top edge
    assert pack.progress[-1] == (6, 6)
    small = pack.run("ReSyncDetectFaces", images=images, preview=False).args[1]
    assert small.shape[0] == 1


def test_detect_faces_policy_fail_names_the_frame(pack) -> None:
    pack.detector.faceless = {0, 1, 2}
    with pytest.raises(pack.lib.FaceNotFoundError, match="No face found in frame 0"):
        pack.run("ReSyncDetectFaces", images=torch.zeros((3, H, W, 3)), missing_face="fail")


def test_missing_checkpoint_says_where_to_put_which_file(pack) -> None:
    message = pack.validate("ReSyncLoadWav2LipModel", ckpt_name="wav2lip_gan.pth")
    assert str(pack.models / "wav2lip") in message and "wav2lip_gan.pth" in message and "non-commercial" in message
    with pytest.raises(pack.lib.ModelError, match="non-commercial"):
        pack.run("ReSyncLoadWav2LipModel", ckpt_name="wav2lip_gan.pth")


def test_checkpoint_loads_into_the_hosts_model_patcher(pack) -> None:
    from lipsync.models.wav2lip.network import Wav2Lip

    folder = pack.models / "wav2lip"
    folder.mkdir(parents=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in Wav2Lip().state_dict().items()}}, folder / "random.pth")
    assert "random.pth" in pack.schema("ReSyncLoadWav2LipModel").inputs[0].options
    assert pack.validate("ReSyncLoadWav2LipModel", ckpt_name="random.pth") is True
    model = pack.run("ReSyncLoadWav2LipModel", ckpt_name="random.pth", cpu_precision="exact").args[0]
    assert type(model.patcher).__name__ == "ModelPatcher" and model.patcher.load_device == torch.device("cpu")
    assert next(model.patcher.model.parameters()).dtype == torch.float32
    fingerprint = pack.nodes["ReSyncLoadWav2LipModel"].fingerprint_inputs(ckpt_name="random.pth")
    assert fingerprint == (folder / "random.pth").stat().st_mtime
    generator = model.generator()
    assert pack.loaded[-1] == (model.patcher, True)  # loaded through the host, fully
    assert generator(np.zeros((1, 80, 16), np.float32), np.zeros((1, 6, 96, 96), np.float32)).shape == (1, 3, 96, 96)


def _graph(pack, clip: str, wave: Waveform, mode: str, **mel_options) -> tuple:
    images, _, fps, _ = pack.run("ReSyncLoadVideo", video=clip).args
    mel = pack.run("ReSyncAudioToMel", audio=audio_dict(wave), fps=fps, **mel_options).args[0]
    track = pack.run("ReSyncDetectFaces", images=images).args[0]
    faces, out_track = pack.run("ReSyncWav2LipGenerate", images=images, faces=track, mel=mel, model=pack.model).args
    frames, mask = pack.run("ReSyncComposite", images=images, faces=faces, face_track=out_track, mode=mode).args
    return images, faces, out_track, frames, mask


def test_on_the_cpu_the_default_precision_runs_the_reduced_precision_generator(pack, checkpoint) -> None:
    pytest.importorskip("openvino")
    from lipsync.models.wav2lip import cpu

    if "bf16" not in cpu.cpu_capabilities():
        pytest.skip("this CPU has no BF16")
    folder = pack.models / "wav2lip"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(checkpoint, folder / "random.pth")
    model = pack.run("ReSyncLoadWav2LipModel", ckpt_name="random.pth").args[0]
    assert model.cpu_precision == "fast"
    generator = model.generator()
    assert type(generator).__name__ == "OpenVinoGenerator" and model.generator() is generator  # made once
    out = generator(np.zeros((2, 80, 16), np.float32), np.zeros((2, 6, 96, 96), np.float32))
    assert out.shape == (2, 3, 96, 96) and out.dtype == np.float32


@pytest.mark.parametrize("mode", ["mouth", "reference"])
def test_the_graph_gives_the_streaming_pipelines_frames(pack, mode) -> None:
    write_source(pack.input / "clip.mkv", 8)
    wave = speech(0.5)  # 13 frames: the 8-frame clip ping-pongs
    _, faces, track, frames, mask = _graph(pack, "clip.mkv", wave, mode)
    assert faces.shape == (13, 96, 96, 3) and track.sources().tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 6, 5, 4, 3, 2]
    lib = pack.lib
    pack.detector.calls = 0
    out = pack.output / "lib.mkv"
    options = lib.LipSyncOptions.of(mode=mode, lossless=True)
    generator = sys.modules[f"{pack.pack.__name__}.lipsync.models.wav2lip.generator"].TorchGenerator(pack.model.patcher.model)
    same_wave = lib.Waveform(wave.samples, wave.sample_rate)  # the pack's own copy of the class
    lib.lipsync_video(pack.input / "clip.mkv", same_wave, out, generator, options)
    expected = decode(out)
    assert len(expected) == frames.shape[0] == 13
    graph = frames.mul(255).round().to(torch.uint8).numpy()
    for i, frame in enumerate(expected):
        assert np.array_equal(graph[i], frame), f"frame {i} differs"
    assert mask.shape == (13, H, W) and float(mask.max()) == 1.0 and float(mask[:, :10].max()) == 0.0


def test_generate_keeps_faceless_frames_aligned_and_uses_the_host(pack) -> None:
    write_source(pack.input / "clip.mkv", 5)
    pack.detector.faceless = {2}
    images, faces, track, frames, mask = _graph(pack, "clip.mkv", speech(0.2), "mouth")
    assert float(faces[2].abs().max()) == 0.0 and float(faces[1].min()) > 0.0  # black placeholder
    assert track.faces[2].box is None and torch.equal(frames[2], images[2]) and float(mask[2].max()) == 0.0
    assert pack.loaded and pack.loaded[-1][1] is True
    assert sys.modules["comfy.model_management"].empty_cache_calls >= 1


def test_composite_resizes_upscaled_faces_and_leaves_the_rest_untouched(pack) -> None:
    write_source(pack.input / "clip.mkv", 3)
    images, faces, track, _, _ = _graph(pack, "clip.mkv", speech(0.12), "mouth")
    nchw = torch.nn.functional.interpolate(faces.permute(0, 3, 1, 2), scale_factor=4, mode="bicubic")
    bigger = nchw.permute(0, 2, 3, 1)
    frames, mask = pack.run("ReSyncComposite", images=images, faces=bigger.clamp(0, 1), face_track=track).args
    changed = (frames != images).any(dim=-1)
    assert bool(changed.any()) and not bool((changed & (mask == 0)).any())
    with pytest.raises(pack.lib.InputError, match="same ReSync Lip-Sync Generate"):
        pack.run("ReSyncComposite", images=images, faces=bigger[:2], face_track=track)


def test_generate_rejects_a_track_of_other_frames(pack) -> None:
    write_source(pack.input / "clip.mkv", 4)
    images = pack.run("ReSyncLoadVideo", video="clip.mkv").args[0]
    track = pack.run("ReSyncDetectFaces", images=images[:3]).args[0]
    mel = pack.run("ReSyncAudioToMel", audio=audio_dict(speech(0.2)), fps=25.0).args[0]
    with pytest.raises(pack.lib.InputError, match="3 entries for 4 frames"):
        pack.run("ReSyncWav2LipGenerate", images=images, faces=track, mel=mel, model=pack.model)


def lipsync_inputs(pack, **extra) -> dict:
    return {"audio": audio_dict(speech(0.6)), "model": pack.model, "filename_prefix": "ReSync/long", **extra}


def test_lipsync_video_streams_a_file_and_embeds_the_workflow(pack) -> None:
    write_source(pack.input / "clip.mkv", 6)
    pack.prompt, pack.extra_pnginfo = {"7": {"class_type": "ReSyncLipSyncVideo"}}, {"workflow": {"nodes": [7]}}
    video, path = pack.run("ReSyncLipSyncVideo", video="clip.mkv", **lipsync_inputs(pack)).args
    assert path.endswith("long_00001_.mp4") and video.get_stream_source() == path
    with av.open(path) as c:
        assert json.loads(c.metadata["workflow"]) == {"nodes": [7]} and c.streams.audio[0].codec_context.name == "aac"
        assert sum(1 for _ in c.decode(video=0)) == 15
    assert pack.progress[-1] == (15, 15) and pack.loaded[-1][1] is True


def test_lipsync_video_takes_the_appended_frame_selection(pack) -> None:
    write_source(pack.input / "clip.mkv", 6)
    path = pack.run("ReSyncLipSyncVideo", video="clip.mkv", select_every_nth=2, **lipsync_inputs(pack)).args[1]
    with av.open(path) as c:
        assert c.streams.video[0].average_rate == 25 / 2  # every 2nd frame: half the rate
        assert sum(1 for _ in c.decode(video=0)) == 8  # 0.6 s of audio at 12.5 fps


def test_lipsync_video_takes_a_host_video_without_decoding_it_whole(pack) -> None:
    clip = write_source(pack.input / "clip.mkv", 4)
    on_disk = sys.modules["comfy_api.latest"].InputImpl.VideoFromFile(str(clip))
    path = pack.run("ReSyncLipSyncVideo", video_input=on_disk, **lipsync_inputs(pack)).args[1]
    in_memory = sys.modules["comfy_api.latest"].InputImpl.VideoFromFile(bytes_io.BytesIO(clip.read_bytes()))
    second = pack.run("ReSyncLipSyncVideo", video_input=in_memory, **lipsync_inputs(pack)).args[1]
    assert len(decode(Path(path))) == len(decode(Path(second))) == 15
    assert on_disk.components_requested == in_memory.components_requested == 0
    assert list((pack.base / "temp").iterdir()) == []  # the temporary copy is gone


def test_cancelled_lipsync_leaves_no_file_and_the_next_run_works(pack, monkeypatch) -> None:
    write_source(pack.input / "clip.mkv", 6)
    pack.interrupt()
    with pytest.raises(sys.modules["comfy.model_management"].InterruptProcessingException):
        pack.run("ReSyncLipSyncVideo", video="clip.mkv", **lipsync_inputs(pack))
    assert [p for p in pack.output.rglob("*") if p.is_file()] == []
    path = pack.run("ReSyncLipSyncVideo", video="clip.mkv", **lipsync_inputs(pack)).args[1]
    assert len(decode(Path(path))) == 15


def test_lipsync_video_validation(pack) -> None:
    write_source(pack.input / "clip.mkv", 2)
    assert pack.validate("ReSyncLipSyncVideo", video="clip.mkv") is True
    assert "not found" in pack.validate("ReSyncLipSyncVideo", video="missing.mp4")
    assert "out of range" in pack.validate("ReSyncLipSyncVideo", video="clip.mkv", fps=999.0)
    assert pack.validate("ReSyncLipSyncVideo", video="") is True  # a VIDEO comes on video_input
    with pytest.raises(pack.lib.InputError, match="connect a VIDEO to video_input"):
        pack.run("ReSyncLipSyncVideo", video="", **lipsync_inputs(pack))


def test_a_fixed_box_replaces_detection(pack) -> None:
    images = torch.zeros((4, H, W, 3))
    track, preview = pack.run("ReSyncDetectFaces", images=images, fixed_box="10, 70, 20, 90").args
    assert [f.box.as_tuple() for f in track.faces] == [(10, 70, 20, 90)] * 4 and pack.detector.calls == 0
    assert track.detector == "fixed box" and preview.shape[0] == 4
    with pytest.raises(pack.lib.InputError, match="four numbers"):
        pack.run("ReSyncDetectFaces", images=images, fixed_box="10, 70")
