"""ReSync Lip-Sync Batch through execute() with the fake host (tests/fakehost), a tiny network
and a detector that finds a face in every frame that is not black."""

from __future__ import annotations

import json
import sys
import types
import wave
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fakehost import host  # noqa: F401  (fixture)
from torch import nn

from lipsync.types import Detection
from lipsync.media.video import VideoWriter, probe

NODE = "ReSyncLipSyncBatch"


class TinyWav2Lip(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.mix = nn.Conv2d(6, 3, 3, padding=1)

    def forward(self, mel: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mix(faces) + mel.mean(dim=(1, 2, 3))[:, None, None, None])


class FaceUnlessBlack:
    name = "fake"

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return [] if frame.max() < 10 else [Detection(20, 10, 84, 70, 0.9)]


def write_video(path: Path, frames: int = 6) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, 25) as writer:
        for i in range(frames):
            writer.write(np.random.default_rng(i).integers(0, 256, (96, 128, 3), dtype=np.uint8))
    return path


def write_wav(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * 16000)) / 16000
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((0.3 * np.sin(2 * np.pi * 200 * t) * 32767).astype("<i2").tobytes())
    return path


def audio_input(seconds: float = 0.32) -> dict:
    t = np.arange(round(seconds * 22050)) / 22050
    return {"waveform": torch.from_numpy(np.sin(2 * np.pi * 300 * t).astype(np.float32))[None, None],
            "sample_rate": 22050}


@pytest.fixture
def pack(host, monkeypatch):
    root = host.pack.__name__
    faces = sys.modules[f"{root}.lipsync.faces"]
    monkeypatch.setattr(faces, "create_detector", lambda name, models_dir=None: FaceUnlessBlack())
    patcher = sys.modules["comfy.model_patcher"].ModelPatcher(TinyWav2Lip().eval(), "cpu", "cpu")
    host.model = sys.modules[f"{root}.nodes.model"].Wav2LipModel("tiny", patcher=patcher)
    host.texts, host.on_text = [], None

    def send_progress_text(text: str, node_id: str) -> None:
        host.texts.append((node_id, text))
        if host.on_text is not None:
            host.on_text(text)

    server = types.ModuleType("server")
    server.PromptServer = types.SimpleNamespace(instance=types.SimpleNamespace(send_progress_text=send_progress_text))
    monkeypatch.setitem(sys.modules, "server", server)
    return host


def run(pack, **inputs):
    node = pack.nodes[NODE]
    node.GET_SCHEMA()
    hidden = sys.modules["comfy_api.latest._io"].HiddenHolder(unique_id="7", prompt={"1": {}}, extra_pnginfo=None)
    clone = type(node.__name__, (node,), {"hidden": hidden})
    return clone.execute(model=pack.model, **inputs)


def test_one_voice_on_a_folder_of_videos_one_corrupt(pack) -> None:
    for name in ("intro", "part_2", "part_10"):
        write_video(pack.input / "course" / f"{name}.mp4")
    (pack.input / "course" / "broken.mp4").write_bytes(b"not a video at all" * 50)
    out = run(pack, videos="course", audio=audio_input())
    report_path, zip_path, summary = out.args
    folder = Path(report_path).parent
    assert folder.parent == pack.output / "ReSync" and folder.name.startswith("batch_")
    assert summary.startswith("3 done, 0 skipped, 1 failed — broken.mp4 + the AUDIO input: Cannot read the video")
    assert sorted(p.name for p in folder.glob("*.mp4")) == ["intro.mp4", "part_10.mp4", "part_2.mp4"]
    with zipfile.ZipFile(zip_path) as archive:
        assert sorted(archive.namelist()) == ["intro.mp4", "part_10.mp4", "part_2.mp4", "report.csv", "report.json"]
    items = json.loads(Path(report_path).read_text())["items"]
    assert [(i["video"], i["status"]) for i in items] == [("broken.mp4", "failed"), ("intro.mp4", "done"),
                                                          ("part_2.mp4", "done"), ("part_10.mp4", "done")]
    assert [t for _, t in pack.texts[:4]] == ["item 1/4: broken.mp4", "item 2/4: intro.mp4", "item 3/4: part_2.mp4",
                                              "item 4/4: part_10.mp4"]
    assert pack.texts[-1] == ("7", summary) and {n for n, _ in pack.texts} == {"7"}
    assert pack.progress[-1][0] == pack.progress[-1][1] and len(pack.progress) >= 4  # one bar over all frames
    assert sys.modules["comfy.model_management"].empty_cache_calls >= 4  # released after every item
    sub = f"ReSync/{folder.name}"
    ui = out.ui
    assert ui["images"][0] == {"filename": "intro.mp4", "subfolder": sub, "type": "output"} and ui["animated"] == [True]
    batch = ui["resync_batch"][0]
    assert batch["zip"] == {"filename": f"{folder.name}.zip", "subfolder": sub, "type": "output"}
    assert batch["counts"] == {"done": 3, "skipped": 0, "failed": 1} and len(batch["outputs"]) == 3
    assert probe(folder / "intro.mp4").frame_count == 8  # 0.32 s at 25 fps

    again = run(pack, videos="course", audio=audio_input(), batch_size=2)  # same batch (batch size does not count)
    assert Path(again.args[0]).parent == folder
    assert again.args[2].startswith("0 done, 3 skipped, 1 failed")


def test_one_video_many_voices_named_after_the_voices(pack) -> None:
    write_video(pack.input / "talk.mp4")
    for lang in ("en", "ja", "ko"):
        write_wav(pack.input / "voices" / f"{lang}.wav", 0.24)
    out = run(pack, videos="talk.mp4", audios="voices/*.wav")
    folder = Path(out.args[0]).parent
    assert sorted(p.name for p in folder.glob("*.mp4")) == ["en.mp4", "ja.mp4", "ko.mp4"]
    assert [t for _, t in pack.texts[:3]] == ["item 1/3: en.wav", "item 2/3: ja.wav", "item 3/3: ko.wav"]


def test_a_manifest_pairs_files(pack) -> None:
    write_video(pack.input / "jobs" / "a.mp4")
    write_wav(pack.input / "jobs" / "en.wav", 0.2)
    (pack.input / "jobs" / "list.csv").write_text("video,audio,output\na.mp4,en.wav,a_english\n")
    out = run(pack, manifest="jobs/list.csv", make_zip=False)
    assert out.args[1] == "" and out.ui["resync_batch"][0]["zip"] is None
    assert (Path(out.args[0]).parent / "a_english.mp4").is_file()


def test_paths_outside_the_input_folder_are_refused(pack, tmp_path: Path, monkeypatch) -> None:
    outside = tmp_path / "elsewhere"
    write_video(outside / "secret.mp4")
    for videos in ("../elsewhere", str(outside / "secret.mp4"), "../*/secret.mp4"):
        message = pack.validate(NODE, videos=videos, audios="")
        assert "outside" in message or "'..'" in message, message
        with pytest.raises(pack.lib.InputError):
            run(pack, videos=videos, audio=audio_input())
    monkeypatch.setenv("RESYNC_BATCH_DIRS", str(outside))  # an explicitly configured folder
    assert pack.validate(NODE, videos=str(outside / "secret.mp4"), audios="") is True
    assert run(pack, videos=str(outside / "secret.mp4"), audio=audio_input()).args[2].startswith("1 done")
    assert pack.validate(NODE, videos="", audios="").startswith("List the videos")
    assert pack.validate(NODE, manifest="../x.csv").startswith("The path '../x.csv' leads outside")


def test_many_videos_and_many_voices_need_a_manifest(pack) -> None:
    for name in ("a", "b"):
        write_video(pack.input / f"{name}.mp4")
        write_wav(pack.input / f"{name}.wav", 0.2)
    with pytest.raises(pack.lib.InputError, match="2 videos and 2 audios: give one audio for many videos"):
        run(pack, videos="*.mp4", audios="*.wav")


def test_cancel_stops_the_batch_and_a_rerun_resumes(pack) -> None:
    for name in ("a", "b", "c"):
        write_video(pack.input / "v" / f"{name}.mp4")
    mm = sys.modules["comfy.model_management"]
    pack.on_text = lambda text: mm.interrupt_current_processing(True) if text.startswith("item 2/") else None
    with pytest.raises(mm.InterruptProcessingException):  # the host's Cancel: the batch stops, no item "fails"
        run(pack, videos="v", audio=audio_input())
    pack.on_text = None
    report = next((pack.output / "ReSync").glob("batch_*/report.json"))
    assert [i["status"] for i in json.loads(report.read_text())["items"]] == ["done", "cancelled", "pending"]
    resumed = run(pack, videos="v", audio=audio_input())
    assert resumed.args[2] == "2 done, 1 skipped, 0 failed"


def test_fingerprint_follows_the_listed_files(pack) -> None:
    write_video(pack.input / "v" / "a.mp4")
    fingerprint = pack.nodes[NODE].fingerprint_inputs
    first = fingerprint(videos="v", audios="")
    assert fingerprint(videos="v", audios="") == first
    write_video(pack.input / "v" / "b.mp4")
    assert fingerprint(videos="v", audios="") != first
    assert fingerprint(videos="../x", audios="") != fingerprint(videos="../x", audios="")  # NaN: always re-run
