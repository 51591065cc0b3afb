"""ReSync Re-Voice Segment through execute(), with the fake host, a fake face detector and the
shared random Wav2Lip checkpoint loaded by ReSync Load Wav2Lip Model: the range is re-voiced,
the video keeps its length, a cancelled run leaves no file, an empty range is refused."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import av
import pytest
from fakehost import host  # noqa: F401  (fixture)
from test_nodes_lipsync import FPS, FakeDetector, audio_dict, decode, speech, textured

from lipsync.media.video import VideoWriter

N = 20  # a 0.8 s clip
START, END = 0.2, 0.48  # frames 5 … 11


def write_talk(path: Path) -> Path:
    """A lossless clip (FFV1 + FLAC) with its own voice, so the splice has an original to keep."""
    with VideoWriter(path, FPS, audio=speech(N / FPS, rate=48000), lossless=True) as writer:
        for i in range(N):
            writer.write(textured(i))
    return path


@pytest.fixture
def pack(host, monkeypatch, checkpoint):
    """The host with the fake detector wired in and the random checkpoint as a RESYNC_WAV2LIP value."""
    root = host.pack.__name__
    detector = FakeDetector()
    for module in ("lipsync.faces", "lipsync.engine.lipsync", "nodes.faces"):
        monkeypatch.setattr(sys.modules[f"{root}.{module}"], "create_detector", lambda name, models_dir=None: detector)
    folder = host.models / "wav2lip"
    folder.mkdir(parents=True)
    shutil.copy(checkpoint, folder / checkpoint.name)
    host.model = host.run("ReSyncLoadWav2LipModel", ckpt_name=checkpoint.name, cpu_precision="exact").args[0]
    host.detector = detector
    write_talk(host.input / "talk.mkv")
    return host


def segment_inputs(pack, **extra) -> dict:
    inputs = {"video": "talk.mkv", "audio": audio_dict(speech(END - START)), "model": pack.model,
              "start_s": START, "end_s": END, "filename_prefix": "ReSync/revoice"}
    return {**inputs, **extra}


def test_revoice_segment_keeps_the_length_and_embeds_the_workflow(pack) -> None:
    pack.prompt, pack.extra_pnginfo = {"3": {"class_type": "ReSyncRevoiceSegment"}}, {"workflow": {"nodes": [3]}}
    video, path = pack.run("ReSyncRevoiceSegment", **segment_inputs(pack)).args
    assert path.endswith("revoice_00001_.mp4") and Path(path).is_file() and video.get_stream_source() == path
    with av.open(path) as c:
        assert json.loads(c.metadata["workflow"]) == {"nodes": [3]}
        assert c.streams.video[0].codec_context.name == "h264" and c.streams.audio[0].codec_context.name == "aac"
    assert len(decode(Path(path))) == N
    assert pack.detector.calls == 7  # only the range's frames are detected
    assert pack.progress[-1] == (N, N) and pack.loaded[-1][1] is True


def test_cancelled_revoice_leaves_no_file_and_the_next_run_works(pack) -> None:
    pack.interrupt()
    with pytest.raises(sys.modules["comfy.model_management"].InterruptProcessingException):
        pack.run("ReSyncRevoiceSegment", **segment_inputs(pack))
    assert [p for p in pack.output.rglob("*") if p.is_file()] == []
    path = pack.run("ReSyncRevoiceSegment", **segment_inputs(pack)).args[1]
    assert len(decode(Path(path))) == N


def test_revoice_segment_validation(pack) -> None:
    node = "ReSyncRevoiceSegment"
    assert pack.validate(node, video="talk.mkv", start_s=START, end_s=END) is True
    for end in (START, START - 0.1):
        message = pack.validate(node, video="talk.mkv", start_s=START, end_s=end)
        assert isinstance(message, str) and "end_s" in message and "after start_s" in message
        assert message.rstrip().endswith(".")
    assert "not found" in pack.validate(node, video="missing.mp4", start_s=START, end_s=END)
    assert pack.validate(node, video="", start_s=START, end_s=END) is True  # a VIDEO comes on video_input
    with pytest.raises(pack.lib.InputError, match="after start_s"):
        pack.run(node, **segment_inputs(pack, end_s=START))
    with pytest.raises(pack.lib.InputError, match="connect a VIDEO to video_input"):
        pack.run(node, **segment_inputs(pack, video=""))
    assert [p for p in pack.output.rglob("*") if p.is_file()] == []
