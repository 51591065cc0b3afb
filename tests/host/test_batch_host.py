"""ReSync Lip-Sync Batch in a real ComfyUI, over HTTP (marker ``host``; see tests/host/test_host.py
for COMFYUI_DIR / COMFYUI_PYTHON). The issue's "done means" on the shared real-face clip and the
random checkpoint: 4 videos (one corrupt) × 1 voice, the same batch again, 1 video × 3 voices.

    COMFYUI_DIR=… COMFYUI_PYTHON=… python -m pytest -m host tests/host/test_batch_host.py -v -s
"""

from __future__ import annotations

import json
import os
import shutil
import time
import wave
import zipfile
from pathlib import Path

import hosttools
import pytest

from lipsync.media.video import probe

pytestmark = pytest.mark.host

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("LIPSYNC_SHARED", REPO.parent / "shared"))
CLIP = SHARED / "media" / "astronaut_closeup_5s_silent.mp4"
VOICE = SHARED / "media" / "speech_piper_16k_5s.wav"
CHECKPOINT = SHARED / "fixtures" / "wav2lip_reference" / "random_wav2lip.pth"


def cut_wav(source: Path, target: Path, start_s: float, seconds: float) -> None:
    with wave.open(str(source), "rb") as voice:
        params = voice.getparams()
        voice.setpos(int(start_s * params.framerate))
        pcm = voice.readframes(int(seconds * params.framerate))
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(pcm)


def write_inputs(folder: Path) -> None:
    """course/: three copies of the real-face clip and a corrupt one; voices/: three 1 s voices."""
    (folder / "course").mkdir()
    for name in ("lesson_1", "lesson_2", "lesson_10"):
        shutil.copy(CLIP, folder / "course" / f"{name}.mp4")
    (folder / "course" / "lesson_3.mp4").write_bytes(CLIP.read_bytes()[: len(CLIP.read_bytes()) // 3])  # cut off
    shutil.copy(CLIP, folder / "talk.mp4")
    shutil.copy(VOICE, folder / "voice.wav")
    (folder / "voices").mkdir()
    for i, lang in enumerate(("english", "japanese", "korean")):
        cut_wav(VOICE, folder / "voices" / f"{lang}.wav", i * 1.5, 1.0)


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory):
    comfy_dir, python = os.environ.get("COMFYUI_DIR"), os.environ.get("COMFYUI_PYTHON")
    if not comfy_dir or not python:
        pytest.skip("host tests need COMFYUI_DIR (a ComfyUI source tree) and COMFYUI_PYTHON (a python that runs it)")
    missing = [p for p in (CLIP, VOICE, CHECKPOINT) if not p.is_file()]
    if missing:
        pytest.skip(f"host tests need the shared media and checkpoint; missing: {', '.join(map(str, missing))}")
    hosttools.ensure_pack_installed(python)
    base = tmp_path_factory.mktemp("comfy_batch")
    config = hosttools.make_base(base, CHECKPOINT)
    write_inputs(base / "input")
    host = hosttools.start_host(Path(comfy_dir), python, base, config)
    try:
        yield host
    finally:
        host.stop()


def batch_prompt(**inputs) -> dict:
    """Load Audio → Trim to 1 s → Lip-Sync Batch (with the model); ``inputs`` override the batch's."""
    batch = {"model": ["2", 0], "videos": "", "audios": "", "manifest": "", "mode": "mouth", "detector": "auto",
             "missing_face": "passthrough", "length_policy": "auto", "batch_size": 8, "batch_name": "ReSync/batch",
             "make_zip": True, "audio": ["4", 0]}
    batch.update(inputs)
    if batch["audio"] is None:
        del batch["audio"]
    return {
        "1": {"class_type": "LoadAudio", "inputs": {"audio": "voice.wav"}},
        "4": {"class_type": "TrimAudioDuration", "inputs": {"audio": ["1", 0], "start_index": 0.0, "duration": 1.0}},
        "2": {"class_type": "ReSyncLoadWav2LipModel",
              "inputs": {"ckpt_name": "random_wav2lip.pth", "precision": "auto"}},
        "3": {"class_type": "ReSyncLipSyncBatch", "inputs": batch},
    }


def run_batch(comfy, prompt: dict) -> tuple[dict, float]:
    started = time.monotonic()
    entry = comfy.run(prompt, timeout=600)
    assert entry["status"]["status_str"] == "success", hosttools.messages(entry, "execution_error")
    return entry["outputs"]["3"], time.monotonic() - started


def test_four_videos_one_corrupt_then_the_same_batch_again(comfy) -> None:
    ui, seconds = run_batch(comfy, batch_prompt(videos="course"))
    batch = ui["resync_batch"][0]
    folder = comfy.base / "output" / batch["report"]["subfolder"]
    print(f"\nfirst run ({seconds:.1f} s): {batch['summary']}")
    assert batch["counts"] == {"done": 3, "skipped": 0, "failed": 1}
    assert sorted(p.name for p in folder.glob("*.mp4")) == ["lesson_1.mp4", "lesson_10.mp4", "lesson_2.mp4"]
    for path in folder.glob("*.mp4"):
        info = probe(path)
        assert (info.frame_count, info.width, info.has_audio) == (25, 512, True)
    items = json.loads((folder / "report.json").read_text())["items"]
    bad = [i for i in items if i["status"] == "failed"]
    assert [i["video"] for i in bad] == ["lesson_3.mp4"] and "cut off" in bad[0]["error"]
    print("failed item:", bad[0]["video"], "—", bad[0]["error"])
    zip_path = folder / batch["zip"]["filename"]
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(archive.namelist())
    print("zip:", zip_path.name, names)
    assert names == ["lesson_1.mp4", "lesson_10.mp4", "lesson_2.mp4", "report.csv", "report.json"]
    assert [v["filename"] for v in ui["images"]] == ["lesson_1.mp4", "lesson_2.mp4", "lesson_10.mp4"]
    assert ui["animated"] == [True]

    again, seconds = run_batch(comfy, batch_prompt(videos="course", batch_size=4))  # the same batch, re-queued
    print(f"second run ({seconds:.1f} s): {again['resync_batch'][0]['summary'].split(' — ')[0]}")
    assert again["resync_batch"][0]["counts"] == {"done": 0, "skipped": 3, "failed": 1}
    assert again["resync_batch"][0]["report"]["subfolder"] == batch["report"]["subfolder"]


def test_one_video_three_voices(comfy) -> None:
    prompt = batch_prompt(videos="talk.mp4", audios="voices", audio=None, batch_name="ReSync/langs")
    ui, seconds = run_batch(comfy, prompt)
    batch = ui["resync_batch"][0]
    folder = comfy.base / "output" / batch["report"]["subfolder"]
    names = sorted(p.name for p in folder.glob("*.mp4"))
    print(f"\n1 video × 3 voices ({seconds:.1f} s): {names}")
    assert names == ["english.mp4", "japanese.mp4", "korean.mp4"]
    assert all(probe(folder / n).frame_count == 25 for n in names)


def test_paths_outside_the_input_folder_are_refused_at_validation(comfy) -> None:
    status, answer = comfy.submit(batch_prompt(videos="../output"))
    assert status == 400
    details = " ".join(e["details"] for e in answer["node_errors"]["3"]["errors"])
    print("\nvalidation:", details)
    assert "leads outside" in details
