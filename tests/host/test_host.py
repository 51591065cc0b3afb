"""The pack in a real ComfyUI, over HTTP (marker ``host``).

Needs ``COMFYUI_DIR`` (a ComfyUI source tree) and ``COMFYUI_PYTHON`` (a python whose environment
runs it, e.g. the venv made by shared/tools/comfyui_host.sh setup); skipped otherwise. The pack
is ``pip install -e``'d into that environment if it is not already, then a server is started on
a free loopback port over a temporary base folder with this repository linked into
custom_nodes/ and the random Wav2Lip checkpoint reached through --extra-model-paths-config.

    COMFYUI_DIR=/path/ComfyUI COMFYUI_PYTHON=/path/venv/bin/python python -m pytest -m host tests/host/test_host.py -v

Each API workflow in workflows/api/ runs on the shared media (CPU, seconds each); the mp4s are
checked (H.264 + AAC, frames, duration, size, the workflow embedded), as are an execution
error with our sentence, validation errors, and /interrupt during a long streaming run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import wave
from pathlib import Path

import av
import hosttools
import numpy as np
import pytest
import workflow_check

from lipsync.media.video import VideoWriter

pytestmark = pytest.mark.host

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("LIPSYNC_SHARED", REPO.parent / "shared"))
MEDIA = ("astronaut_closeup_5s_silent.mp4", "speech_piper_16k_5s.wav", "speech_espeak_16k_5s.wav")
CHECKPOINT = SHARED / "fixtures" / "wav2lip_reference" / "random_wav2lip.pth"
NODES = ["ReSyncLoadVideo", "ReSyncAudioToMel", "ReSyncDetectFaces", "ReSyncLoadWav2LipModel",
         "ReSyncLoadMuseTalkModel", "ReSyncWav2LipGenerate", "ReSyncFaceRestore", "ReSyncComposite", "ReSyncSaveVideo", "ReSyncLipSyncVideo",
         "ReSyncRevoiceSegment", "ReSyncLipSyncBatch"]

# What the API twins run instead of the templates' placeholders: the test media and checkpoint,
# short clips, and core ImageScaleBy where the template has an upscale model.
TEST_VALUES = {
    "talking_head.mp4": "astronaut_closeup_5s_silent.mp4",
    "wav2lip_gan.pth": "random_wav2lip.pth",
}
TWIN_CHANGES = {
    "resync_basic": {("1", "frame_load_cap"): 25, ("3", "frame_count"): 25, ("2", "audio"): "speech_piper_16k_5s.wav"},
    "resync_long_video": {("1", "audio"): "speech_piper_16k_5s.wav"},
    "resync_chaining": {("1", "audio"): "speech_espeak_16k_5s.wav", ("3", "frame_load_cap"): 25,
                        ("2", "start_index"): 0.5, ("2", "duration"): 1.0},
    "resync_musetalk": {("1", "frame_load_cap"): 25, ("3", "frame_count"): 25, ("2", "audio"): "speech_piper_16k_5s.wav"},
}
EXPECTED = {  # workflow: (frames, seconds) of its mp4
    "resync_basic": (25, 1.0),
    "resync_long_video": (125, 5.0),
    "resync_chaining": (25, 1.0),
    "resync_musetalk": (25, 1.0),  # the MuseTalk fixture's reduced weights (shared/fixtures/musetalk_reference)
}


def _write_inputs(folder: Path) -> None:
    """The shared media, a video without a face, and a 2-minute voice (for the interrupt test)."""
    for name in MEDIA:
        shutil.copy(SHARED / "media" / name, folder / name)
    with VideoWriter(folder / "no_face.mp4", 25) as writer:  # flat grey: nothing to detect
        for _ in range(10):
            writer.write(np.full((128, 128, 3), 120, np.uint8))
    with wave.open(str(folder / "speech_piper_16k_5s.wav"), "rb") as voice:
        params, pcm = voice.getparams(), voice.readframes(voice.getnframes())
    with wave.open(str(folder / "voice_2min.wav"), "wb") as long_voice:
        long_voice.setparams(params)
        long_voice.writeframes(pcm * 24)


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory):
    comfy_dir, python = os.environ.get("COMFYUI_DIR"), os.environ.get("COMFYUI_PYTHON")
    if not comfy_dir or not python:
        pytest.skip("host tests need COMFYUI_DIR (a ComfyUI source tree) and COMFYUI_PYTHON (a python that runs it)")
    missing = [p for p in [CHECKPOINT, *(SHARED / "media" / m for m in MEDIA)] if not p.is_file()]
    if missing:
        pytest.skip(f"host tests need the shared media and checkpoint; missing: {', '.join(map(str, missing))}")
    print("pack in the host's environment:", hosttools.ensure_pack_installed(python))
    base = tmp_path_factory.mktemp("comfy_base")
    config = hosttools.make_base(base, CHECKPOINT)
    _write_inputs(base / "input")
    host = hosttools.start_host(Path(comfy_dir), python, base, config)
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="module")
def object_info(comfy) -> dict:
    return comfy.get("/object_info")


def load(name: str, api: bool) -> dict:
    return json.loads((REPO / "workflows" / ("api/" if api else "") / f"{name}.json").read_text())


def mp4_facts(path: Path) -> dict:
    with av.open(str(path)) as c:
        video, audio = c.streams.video[0], c.streams.audio[0]
        frames = sum(1 for _ in c.decode(video=0))
        return {"video": video.codec_context.name, "audio": audio.codec_context.name, "frames": frames,
                "size": (video.width, video.height), "seconds": float(video.duration * video.time_base),
                "audio_seconds": float(audio.duration * audio.time_base), "metadata": dict(c.metadata)}


def test_host_lists_every_node_with_our_types(comfy, object_info) -> None:
    assert "IMPORT FAILED" not in comfy.log.read_text()
    for node_id in NODES:
        info = object_info[node_id]
        assert info["category"].startswith("ReSync/") and info["description"]
        assert info["python_module"] == f"custom_nodes.{hosttools.PACK_FOLDER}"
    assert object_info["ReSyncWav2LipGenerate"]["input"]["required"]["mel"][0] == "RESYNC_MEL"
    options = object_info["ReSyncLoadWav2LipModel"]["input"]["required"]["ckpt_name"][1]["options"]
    assert options == ["random_wav2lip.pth"]  # found through extra_model_paths.yaml
    assert object_info["ReSyncLoadVideo"]["input"]["required"]["video"][1]["video_upload"] is True


def test_the_template_browser_lists_each_workflow_once(comfy) -> None:
    listed = comfy.get("/workflow_templates")
    assert sorted(listed[hosttools.PACK_FOLDER]) == sorted(EXPECTED)
    served = comfy.get(f"/api/workflow_templates/{hosttools.PACK_FOLDER}/resync_basic.json")
    assert served == load("resync_basic", api=False)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_templates_load_and_their_api_twins_are_the_same_graph(name, object_info) -> None:
    ui = load(name, api=False)
    assert workflow_check.ui_problems(ui, object_info) == []
    twin = workflow_check.ui_to_api(ui, object_info)
    for node in twin.values():
        for key, value in node["inputs"].items():
            node["inputs"][key] = TEST_VALUES.get(value, value) if isinstance(value, str) else value
    for (node_id, key), value in TWIN_CHANGES[name].items():
        twin[node_id]["inputs"][key] = value
    if name == "resync_chaining":  # the upscale model becomes core ImageScaleBy
        del twin["12"], twin["13"]
        scale = {"image": ["7", 0], "upscale_method": "lanczos", "scale_by": 2.0}
        twin["8"] = {"class_type": "ImageScaleBy", "inputs": scale}
        twin["9"]["inputs"]["faces"] = ["8", 0]
    api = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in load(name, api=True).items()}
    assert twin == api


@pytest.mark.parametrize("name", list(EXPECTED))
def test_api_workflow_makes_an_h264_aac_mp4_with_the_workflow_inside(name, comfy) -> None:
    ui = load(name, api=False)
    started = time.monotonic()
    status, prompt_id = comfy.submit(load(name, api=True), extra_data={"extra_pnginfo": {"workflow": ui}})
    assert status == 200, prompt_id
    entry = comfy.wait(prompt_id, timeout=600)
    elapsed = time.monotonic() - started
    assert entry["status"]["status_str"] == "success", hosttools.messages(entry, "execution_error")
    videos = [f for f in hosttools.output_files(entry) if f["filename"].endswith(".mp4")]
    assert len(videos) == 1 and videos[0]["type"] == "output"
    facts = mp4_facts(comfy.base / "output" / videos[0]["subfolder"] / videos[0]["filename"])
    frames, seconds = EXPECTED[name]
    print(f"{name}: {facts['frames']} frames, {facts['seconds']:.2f} s, {facts['size']}, "
          f"{facts['video']}+{facts['audio']} in {elapsed:.1f} s")
    assert (facts["video"], facts["audio"], facts["size"]) == ("h264", "aac", (512, 512))
    assert facts["frames"] == frames and facts["seconds"] == pytest.approx(seconds, abs=0.05)
    assert facts["audio_seconds"] == pytest.approx(seconds, abs=0.1)
    assert json.loads(facts["metadata"]["workflow"])["nodes"] == ui["nodes"]
    assert set(json.loads(facts["metadata"]["prompt"])) == set(load(name, api=True))


def test_musetalk_in_the_host_changes_only_the_lower_face(comfy) -> None:
    """The MuseTalk template in the real host (fixture weights, a fixed box), its frames taken
    losslessly from the Composite (a PNG preview beside one of the loaded frames): every pixel
    above the box's middle and outside the face region is the input's, bit for bit."""
    api = load("resync_musetalk", api=True)
    top, bottom, left, right = 150, 450, 130, 390
    api["4"]["inputs"]["fixed_box"] = f"{top}, {bottom}, {left}, {right}"
    api["1"]["inputs"]["frame_load_cap"], api["3"]["inputs"]["frame_count"] = 3, 3
    api["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    api["10"] = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    status, prompt_id = comfy.submit(api)
    assert status == 200, prompt_id
    entry = comfy.wait(prompt_id, timeout=600)
    assert entry["status"]["status_str"] == "success", hosttools.messages(entry, "execution_error")

    def frames(node: str) -> np.ndarray:
        import cv2

        files = entry["outputs"][node]["images"]
        return np.stack([cv2.imread(str(comfy.base / f["type"] / f["subfolder"] / f["filename"])) for f in files])

    out, source = frames("9"), frames("10")
    assert out.shape == source.shape == (3, 512, 512, 3)
    changed = np.any(out != source, axis=(0, 3))
    rows, cols = np.nonzero(changed)
    assert rows.size > 0, "the mouth was not regenerated"
    middle = top + (bottom - top) // 2
    assert rows.min() >= middle and cols.min() >= left and cols.max() < right
    assert rows.max() < bottom + 32  # the face region: the box and MuseTalk's bottom margin


def test_a_video_without_a_face_under_policy_fail_reports_our_sentence(comfy) -> None:
    prompt = load("resync_basic", api=True)
    prompt["1"]["inputs"]["video"] = "no_face.mp4"
    prompt["4"]["inputs"]["missing_face"] = "fail"
    entry = comfy.run(prompt)
    errors = hosttools.messages(entry, "execution_error")
    assert entry["status"]["status_str"] == "error" and len(errors) == 1
    assert errors[0]["node_type"] == "ReSyncDetectFaces" and errors[0]["exception_type"].endswith("FaceNotFoundError")
    assert errors[0]["exception_message"].startswith("No face found in frame 0 (missing-face policy 'fail')")
    print("execution_error:", errors[0]["exception_message"].strip())


def test_what_can_be_known_early_is_refused_at_validation(comfy) -> None:
    prompt = load("resync_basic", api=True)
    prompt["6"]["inputs"]["ckpt_name"] = "wav2lip_gan.pth"
    prompt["1"]["inputs"]["video"] = "missing.mp4"
    prompt["9"]["inputs"]["fps"] = 1000.0
    status, answer = comfy.submit(prompt)
    assert status == 400
    details = {node: " ".join(e["details"] for e in err["errors"]) for node, err in answer["node_errors"].items()}
    assert "non-commercial" in details["6"] and "models/wav2lip" in details["6"]
    assert "was not found in ComfyUI's input folder" in details["1"]
    assert "out of range" in details["9"]


def test_interrupt_stops_a_long_run_cleanly_and_the_next_run_works(comfy) -> None:
    prompt = load("resync_long_video", api=True)
    prompt["1"]["inputs"]["audio"] = "voice_2min.wav"  # 3000 frames: minutes of work on a CPU
    prompt["3"]["inputs"]["filename_prefix"] = "ReSync/interrupted"
    status, prompt_id = comfy.submit(prompt)
    assert status == 200
    deadline = time.monotonic() + 60
    while not comfy.running(prompt_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(6)  # into the streaming loop
    sent = time.monotonic()
    comfy.interrupt(prompt_id)
    entry = comfy.wait(prompt_id, timeout=120)
    stopped_after = time.monotonic() - sent
    interrupted = hosttools.messages(entry, "execution_interrupted")
    where = interrupted[0]["node_type"] if interrupted else "?"
    print(f"interrupted in {where} {stopped_after:.1f} s after /interrupt")
    assert interrupted and interrupted[0]["node_type"] == "ReSyncLipSyncVideo"
    assert stopped_after < 30
    outputs = (comfy.base / "output").rglob("*")
    leftovers = [p.name for p in outputs if "interrupted" in p.name or ".lipsync-tmp-" in p.name]
    assert leftovers == []
    again = load("resync_long_video", api=True)
    again["3"]["inputs"]["filename_prefix"] = "ReSync/after_interrupt"
    entry = comfy.run(again, timeout=600)
    assert entry["status"]["status_str"] == "success"
    assert mp4_facts(comfy.base / "output" / "ReSync" / "after_interrupt_00001_.mp4")["frames"] == 125


def test_lipsync_video_streams_a_core_video_input(comfy) -> None:
    prompt = load("resync_long_video", api=True)
    prompt["4"] = {"class_type": "LoadVideo", "inputs": {"file": "astronaut_closeup_5s_silent.mp4"}}
    trim = {"audio": ["1", 0], "start_index": 0.0, "duration": 1.0}
    prompt["5"] = {"class_type": "TrimAudioDuration", "inputs": trim}
    prompt["3"]["inputs"].update(video="", video_input=["4", 0], audio=["5", 0], filename_prefix="ReSync/from_video")
    entry = comfy.run(prompt)
    assert entry["status"]["status_str"] == "success", hosttools.messages(entry, "execution_error")
    assert mp4_facts(comfy.base / "output" / "ReSync" / "from_video_00001_.mp4")["frames"] == 25
