"""MuseTalk 1.5 in the node pack (fake host, the golden fixture's reduced weights): the loader
finds the layout in models/musetalk and hands three parts to the host's memory manager; the graph
(Audio To Mel → Generate → Composite) and the streaming node run it; Composite pastes into the
region MuseTalk cropped (the box plus its 10 px bottom margin)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers", reason="MuseTalk needs the musetalk extra (diffusers)")
pytest.importorskip("transformers", reason="MuseTalk needs the musetalk extra (transformers)")

from conftest import SHARED, need
from fakehost import host  # noqa: F401  (fixture)
from test_nodes_lipsync import audio_dict, decode

from lipsync.media.video import VideoWriter
from lipsync.types import Waveform

FIX = SHARED / "fixtures" / "musetalk_reference"
BOX = "65, 186, 80, 178"  # the fixture's face box on the halved frames: top, bottom, left, right
REGION = (slice(65, 196), slice(80, 178))  # with MuseTalk 1.5's 10 px below


@pytest.fixture
def mt(host):
    """The host with the fixture's MuseTalk layout in models/musetalk and a 6-frame 256² clip."""
    folder = host.models / "musetalk"
    folder.mkdir(parents=True)
    for part in ("musetalkV15", "sd-vae", "whisper"):
        (folder / part).symlink_to(need(FIX / "models" / part), target_is_directory=True)
    import av

    with av.open(str(need(FIX / "inputs" / "face_2s.mkv"))) as c:
        frames = [f.to_ndarray(format="rgb24")[::2, ::2] for _, f in zip(range(6), c.decode(video=0))]
    with VideoWriter(host.input / "face.mkv", 25, lossless=True) as writer:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame))
    with open(FIX / "inputs" / "speech_2s.wav", "rb") as f:
        pcm = np.frombuffer(f.read()[44:], "<i2")[:3840]  # 0.24 s: 6 frames
    host.voice = Waveform((pcm / 32768.0).astype(np.float32)[None], 16000)
    torch.set_num_threads(2)
    return host


def test_loader_lists_the_layout_and_hands_three_parts_to_the_host(mt) -> None:
    assert mt.schema("ReSyncLoadMuseTalkModel").inputs[0].options == ["musetalkV15"]
    assert mt.validate("ReSyncLoadMuseTalkModel", model_dir="musetalkV15") is True
    assert "download musetalk" in mt.validate("ReSyncLoadMuseTalkModel", model_dir="other/musetalkV15")
    model = mt.run("ReSyncLoadMuseTalkModel", model_dir="musetalkV15", precision="auto").args[0]
    patchers = [model.unet, model.vae, model.whisper]
    assert all(type(p).__name__ == "ModelPatcher" for p in patchers)
    generator = model.generator()
    assert mt.loaded[-3:] == [(p, True) for p in patchers]  # one request, all three, fully
    assert generator.family == "musetalk" and generator.crop.size == 256 and generator.dtype == torch.float32
    with pytest.raises(mt.lib.ModelError, match="fp16 needs a GPU"):
        mt.run("ReSyncLoadMuseTalkModel", model_dir="musetalkV15", precision="fp16")
    bf16 = mt.run("ReSyncLoadMuseTalkModel", model_dir="musetalkV15", precision="bf16").args[0]
    assert next(bf16.unet.model.inner.parameters()).dtype == torch.bfloat16


def _graph(mt, model, mode: str):
    images, _, fps, _ = mt.run("ReSyncLoadVideo", video="face.mkv").args
    mel = mt.run("ReSyncAudioToMel", audio=audio_dict(mt.voice), fps=fps).args[0]
    track = mt.run("ReSyncDetectFaces", images=images, fixed_box=BOX).args[0]
    faces, out_track = mt.run("ReSyncWav2LipGenerate", images=images, faces=track, mel=mel, model=model).args
    frames, mask = mt.run("ReSyncComposite", images=images, faces=faces, face_track=out_track, mode=mode).args
    return images, faces, out_track, frames, mask


def test_the_graph_gives_the_streaming_pipelines_frames(mt) -> None:
    model = mt.run("ReSyncLoadMuseTalkModel", model_dir="musetalkV15").args[0]
    images, faces, track, frames, mask = _graph(mt, model, "mouth")
    assert faces.shape == (6, 256, 256, 3)
    assert track.faces[0].box.as_tuple() == (65, 196, 80, 178)  # the region, margin included
    lib = mt.lib
    out = mt.output / "lib.mkv"
    lib.lipsync_video(mt.input / "face.mkv", lib.Waveform(mt.voice.samples, 16000), out, model.generator(),
                      lib.LipSyncOptions.of(box=lib.Box(65, 186, 80, 178), lossless=True))
    expected = decode(out)
    graph = frames.mul(255).round().to(torch.uint8).numpy()
    assert len(expected) == 6 and all(np.array_equal(g, e) for g, e in zip(graph, expected))
    # The mouth mask reaches into the margin below the box, never above the region's middle.
    assert float(mask[:, 187:196].max()) > 0 and float(mask[:, :130].max()) == 0.0


def test_reference_composite_fills_the_region_with_the_margin(mt) -> None:
    model = mt.run("ReSyncLoadMuseTalkModel", model_dir="musetalkV15").args[0]
    images, faces, track, frames, mask = _graph(mt, model, "reference")
    import cv2

    for i in range(6):
        face = (faces[i].numpy() * 255.0).astype(np.uint8)
        pasted = cv2.resize(face, (98, 131))  # bilinear to the region, as the original pastes
        got = frames[i].mul(255).round().to(torch.uint8).numpy()
        assert np.array_equal(got[REGION], pasted)
        outside = np.ones(got.shape[:2], bool)
        outside[REGION] = False
        assert np.array_equal(got[outside], images[i].mul(255).round().to(torch.uint8).numpy()[outside])
        assert float(mask[i][REGION].min()) == 1.0 and float(mask[i].sum()) == 131 * 98


def test_streaming_node_runs_musetalk(mt) -> None:
    model = mt.run("ReSyncLoadMuseTalkModel", model_dir="musetalkV15").args[0]
    video, path = mt.run("ReSyncLipSyncVideo", video="face.mkv", audio=audio_dict(mt.voice), model=model,
                         filename_prefix="ReSync/mt", fixed_box=BOX).args
    assert Path(path).name == "mt_00001_.mp4" and len(decode(Path(path))) == 6
    assert [entry[0] for entry in mt.loaded[-3:]] == [model.unet, model.vae, model.whisper]


def test_the_musetalk_template_runs(mt) -> None:
    """The API twin of workflows/resync_musetalk.json, node by node in the fake host, on the shared
    media (8 frames) with the fixture's weights: an H.264 + AAC mp4 whose frames changed only
    around the mouth."""
    import json
    import shutil

    import av
    from fakehost import REPO

    prompt = json.loads((REPO / "workflows" / "api" / "resync_musetalk.json").read_text())
    prompt["1"]["inputs"]["frame_load_cap"] = prompt["3"]["inputs"]["frame_count"] = 8
    for name in ("astronaut_closeup_5s_silent.mp4", "speech_piper_16k_5s.wav"):
        shutil.copy(need(SHARED / "media" / name), mt.input / name)
    voice = mt.lib.load_audio(mt.input / prompt["2"]["inputs"]["audio"])
    results: dict[str, tuple] = {}

    def value(v):
        return results[v[0]][v[1]] if isinstance(v, list) else v

    pending = dict(prompt)
    while pending:
        for node_id, node in list(pending.items()):
            links = [v[0] for v in node["inputs"].values() if isinstance(v, list)]
            if any(link not in results for link in links):
                continue
            inputs = {k: value(v) for k, v in node["inputs"].items()}
            kind = node["class_type"]
            if kind == "LoadAudio":  # core nodes: what they hand over
                results[node_id] = ({"waveform": torch.from_numpy(voice.samples)[None],
                                     "sample_rate": voice.sample_rate},)
            elif kind == "PreviewImage":
                results[node_id] = ()
            else:
                results[node_id] = tuple(mt.run(kind, **inputs).args)
            del pending[node_id]
    images, frames = results["1"][0], results["8"][0]
    changed = (frames != images).any(dim=-1).any(dim=0)
    rows = torch.nonzero(changed.any(dim=1)).flatten()
    box = results["4"][0].faces[0].box
    assert len(rows) and int(rows[0]) >= (box.top + box.bottom) // 2 - 1  # only the lower face changed
    (saved,) = list((mt.output / "ReSync").glob("musetalk_*.mp4"))
    with av.open(str(saved)) as c:
        assert c.streams.video[0].codec_context.name == "h264" and c.streams.audio[0].codec_context.name == "aac"
        assert sum(1 for _ in c.decode(video=0)) == 8
