"""ReSync Load Video and ReSync Save Video through execute(), with the fake host.

Media is generated in the test's input folder: flat grey frames whose level encodes the frame
index (so it survives H.264) and a stereo sine at 44.1 kHz.
"""

from __future__ import annotations

import json
import math
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from fakehost import host  # noqa: F401  (fixture)

from lipsync.types import Waveform
from lipsync.media.video import VideoWriter

H, W, FPS, STEP = 48, 64, 25, 8


def write_clip(path: Path, frames: int = 20, audio: bool = True, fps: int = FPS) -> Path:
    t = np.arange(round(frames / fps * 44100)) / 44100
    tones = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)]).astype(np.float32)
    wave = Waveform(tones * 0.5, 44100)
    with VideoWriter(path, fps, audio=wave if audio else None) as writer:
        for i in range(frames):
            writer.write(np.full((H, W, 3), i * STEP, np.uint8))
    return path


def levels(images: torch.Tensor) -> list[int]:
    return [round(float(images[i].mean()) * 255 / STEP) for i in range(images.shape[0])]


def streams(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        frames = sum(1 for _ in c.decode(video=0))
        return {
            "video": v.codec_context.name, "audio": a.codec_context.name if a else None, "frames": frames,
            "size": (v.width, v.height), "rate": v.average_rate, "metadata": dict(c.metadata),
            "audio_seconds": float(a.duration * a.time_base) if a and a.duration else None,
        }


def test_load_video_outputs_images_audio_fps_and_count(host) -> None:
    write_clip(host.input / "clip.mp4", frames=20)
    images, audio, fps, count = host.run("ReSyncLoadVideo", video="clip.mp4").args
    assert images.dtype == torch.float32 and tuple(images.shape) == (20, H, W, 3)
    assert levels(images) == list(range(20))
    assert fps == 25.0 and count == 20
    assert audio["sample_rate"] == 44100 and tuple(audio["waveform"].shape[:2]) == (1, 2)
    assert audio["waveform"].shape[2] == pytest.approx(20 / 25 * 44100, abs=2)
    assert host.progress[-1] == (20, 20)


def test_load_video_selection_cuts_frames_audio_and_fps(host) -> None:
    write_clip(host.input / "clip.mp4", frames=30)
    images, audio, fps, count = host.run(
        "ReSyncLoadVideo", video="clip.mp4", frame_load_cap=5, skip_first_frames=4, select_every_nth=3
    ).args
    assert levels(images) == [4, 7, 10, 13, 16] and count == 5
    assert fps == pytest.approx(25 / 3)
    assert audio["waveform"].shape[2] == pytest.approx(5 * 3 / 25 * 44100, abs=2)  # 0.6 s from 0.16 s
    start = round(4 / 25 * 44100)
    t = (start + np.arange(10)) / 44100
    expected = np.sin(2 * np.pi * 440 * t) * 0.5
    assert np.allclose(audio["waveform"][0, 0, :10].numpy(), expected, atol=0.05)


def test_load_video_without_audio_gives_silence_of_the_right_length(host) -> None:
    write_clip(host.input / "mute.mp4", frames=10, audio=False)
    _, audio, _, count = host.run("ReSyncLoadVideo", video="mute.mp4").args
    seconds = audio["waveform"].shape[2] / audio["sample_rate"]
    assert count == 10 and seconds == pytest.approx(0.4, abs=1e-3) and float(audio["waveform"].abs().max()) == 0.0


def test_load_video_refuses_what_would_not_fit_and_names_the_fixes(host, monkeypatch) -> None:
    write_clip(host.input / "clip.mp4", frames=20)
    common = sys.modules[f"{host.pack.__name__}.nodes._common"]
    monkeypatch.setattr(common, "available_memory", lambda: 10 * H * W * 12)  # room for 7 frames at 75 %
    with pytest.raises(host.lib.InputError) as err:
        host.run("ReSyncLoadVideo", video="clip.mp4")
    message = str(err.value)
    assert "frame_load_cap" in message and "ReSyncLipSyncVideo" in message and "at most 7" in message
    images = host.run("ReSyncLoadVideo", video="clip.mp4", frame_load_cap=7).args[0]
    assert images.shape[0] == 7


def test_load_video_validation_and_fingerprint(host) -> None:
    clip = write_clip(host.input / "clip.mp4", frames=3)
    (host.input / "notes.txt").write_text("x")
    assert host.validate("ReSyncLoadVideo", video="clip.mp4") is True
    assert "not found" in host.validate("ReSyncLoadVideo", video="gone.mp4")
    assert "Unsupported file type (.txt)" in host.validate("ReSyncLoadVideo", video="notes.txt")
    assert host.nodes["ReSyncLoadVideo"].fingerprint_inputs(video="clip.mp4", frame_load_cap=0) == clip.stat().st_mtime
    assert "clip.mp4" in host.schema("ReSyncLoadVideo").inputs[0].options
    assert "notes.txt" not in host.schema("ReSyncLoadVideo").inputs[0].options


def test_load_video_reads_a_still_image_as_one_frame(host) -> None:
    import cv2

    cv2.imwrite(str(host.input / "face.png"), np.full((H, W, 3), 80, np.uint8))
    _, audio, fps, count = host.run("ReSyncLoadVideo", video="face.png").args
    assert count == 1 and fps == 25.0 and audio["waveform"].shape[2] == 16000 // 25


def test_save_video_writes_h264_aac_with_counter_workflow_and_outputs(host) -> None:
    host.prompt = {"1": {"class_type": "ReSyncSaveVideo", "inputs": {}}}
    host.extra_pnginfo = {"workflow": {"nodes": [], "links": []}}
    images = torch.from_numpy(np.stack([np.full((H, W, 3), i * STEP, np.uint8) for i in range(10)])).float() / 255
    t = np.arange(44100) / 44100
    tone = torch.from_numpy(np.sin(2 * np.pi * 300 * t).astype(np.float32))
    audio = {"waveform": tone[None, None], "sample_rate": 44100}
    out = host.run("ReSyncSaveVideo", images=images, fps=25.0, filename_prefix="ReSync/test", audio=audio)
    video, path = out.args
    assert path == str(host.output / "ReSync" / "test_00001_.mp4") and Path(path).is_file()
    assert video.get_stream_source() == path
    assert out.ui.as_dict()["images"] == [{"filename": "test_00001_.mp4", "subfolder": "ReSync", "type": "output"}]
    info = streams(Path(path))
    assert (info["video"], info["audio"], info["frames"], info["size"]) == ("h264", "aac", 10, (W, H))
    assert info["audio_seconds"] == pytest.approx(0.4, abs=0.03)  # 1 s of audio cut to the 10 frames
    assert json.loads(info["metadata"]["prompt"]) == host.prompt
    assert json.loads(info["metadata"]["workflow"]) == host.extra_pnginfo["workflow"]
    second = host.run("ReSyncSaveVideo", images=images, fps=25.0, filename_prefix="ReSync/test").args[1]
    assert second.endswith("test_00002_.mp4") and streams(Path(second))["audio"] is None


def test_save_video_honours_disable_metadata(host) -> None:
    sys.modules["comfy.cli_args"].args.disable_metadata = True
    host.prompt = {"1": {}}
    path = host.run("ReSyncSaveVideo", images=torch.zeros((2, H, W, 3)), fps=25.0, filename_prefix="x").args[1]
    assert "prompt" not in streams(Path(path))["metadata"]


def test_cancelled_save_leaves_no_file_and_the_next_run_works(host) -> None:
    images = torch.zeros((30, H, W, 3))
    host.interrupt()
    with pytest.raises(sys.modules["comfy.model_management"].InterruptProcessingException):
        host.run("ReSyncSaveVideo", images=images, fps=25.0, filename_prefix="cancel")
    assert list(host.output.rglob("*")) == []  # not even the hidden temporary file
    path = host.run("ReSyncSaveVideo", images=images, fps=25.0, filename_prefix="cancel").args[1]
    assert streams(Path(path))["frames"] == 30


def test_fps_out_of_range_is_rejected_early_and_at_run_time(host) -> None:
    assert "out of range" in host.validate("ReSyncSaveVideo", fps=500.0)
    assert host.validate("ReSyncSaveVideo", fps=29.97) is True
    assert host.validate("ReSyncSaveVideo") is True  # fps linked: not known yet
    with pytest.raises(host.lib.InputError, match=r"between 0\.1 and 240"):
        host.run("ReSyncSaveVideo", images=torch.zeros((1, H, W, 3)), fps=1000.0, filename_prefix="x")


def test_ntsc_rate_round_trips_exactly(host) -> None:
    write_clip(host.input / "ntsc.mp4", frames=5, fps=Fraction(30000, 1001))  # type: ignore[arg-type]
    images, _, fps, _ = host.run("ReSyncLoadVideo", video="ntsc.mp4").args
    path = host.run("ReSyncSaveVideo", images=images, fps=fps, filename_prefix="ntsc").args[1]
    assert streams(Path(path))["rate"] == Fraction(30000, 1001)
    assert math.isclose(fps, 30000 / 1001)


def test_load_video_gives_srgb_in_square_pixels_and_save_video_keeps_it(host) -> None:
    """Load Video's IMAGE is the picture a player shows, whatever the file: an untagged HD BT.709
    clip's colours (the old decoder read it as BT.601: red 219,38,39 became 203,18,40), a
    full-range one's, an anamorphic one's displayed shape. Save Video writes it back tagged BT.709
    and a player shows the same colours (within 2 levels)."""
    from colour_clips import PATCHES, patch_image, patch_means, player_view, tags_for
    from colour_clips import write_clip as write_colour_clip

    cases = {
        "untagged_hd.mp4": dict(rgb=patch_image(1280, 720), matrix="bt709"),
        "full_range.mp4": dict(rgb=patch_image(640, 360), matrix="bt709", full=True, tags=tags_for("bt709", True)),
        "anamorphic.mp4": dict(rgb=patch_image(96, 64), matrix="bt601", sar=Fraction(4, 3)),
    }
    for name, spec in cases.items():
        write_colour_clip(host.input / name, spec.pop("rgb"), frames=2, **spec)
        images = host.run("ReSyncLoadVideo", video=name).args[0]
        if name == "anamorphic.mp4":
            assert tuple(images.shape) == (2, 64, 128, 3)
            continue
        rgb = images[0].numpy().astype(np.float64) * 255
        assert np.abs(patch_means(rgb, len(PATCHES)) - PATCHES * 255).max() <= 2.0, name
        path = host.run("ReSyncSaveVideo", images=images, fps=25.0, filename_prefix=f"ReSync/{name}").args[1]
        before, after = player_view(host.input / name) * 255, player_view(Path(path)) * 255
        assert np.abs(patch_means(after, len(PATCHES)) - patch_means(before, len(PATCHES))).max() <= 2.0, name
