"""ReSync Lip-Sync Batch hands its items to a real local Ray (the fake host, the reference
checkpoint): the optional cluster inputs, progress on the node, Cancel ends the workers."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import torch
from clustertools import write_clip
from conftest import CHECKPOINT, RAY_HOME, need, ray_environment, start_local_ray
from fakehost import host  # noqa: F401  (fixture)

pytestmark = pytest.mark.cluster

NODE = "ReSyncLipSyncBatch"
CLUSTER = {"cluster": "local:2", "workers": 2, "fixed_box": "20, 110, 24, 104"}


@pytest.fixture
def pack(host, ray_local):
    # Inside ComfyUI the library is <pack folder>.lipsync: its code must travel with the job, which
    # Ray allows only when the driver connects (lipsync.cluster._ray.connect). So this test lets the
    # node start its own local Ray, then brings the session's back.
    ray_local.shutdown()
    root = host.pack.__name__
    lib = sys.modules[f"{root}.lipsync.models.wav2lip.generator"]
    module = lib.build_module(sys.modules[f"{root}.lipsync.models.wav2lip.checkpoint"].read_state_dict(need(CHECKPOINT)))
    patcher = sys.modules["comfy.model_patcher"].ModelPatcher(module, "cpu", "cpu")
    host.model = sys.modules[f"{root}.nodes.model"].Wav2LipModel("reference", patcher=patcher)
    host.texts, host.on_text = [], None

    def send_progress_text(text: str, node_id: str) -> None:
        host.texts.append(text)
        if host.on_text is not None:
            host.on_text(text)

    server = types.ModuleType("server")
    server.PromptServer = types.SimpleNamespace(instance=types.SimpleNamespace(send_progress_text=send_progress_text))
    sys.modules["server"] = server
    with ray_environment(RAY_HOME[0]):  # the Ray the node starts writes under the test's HOME
        yield host
    sys.modules.pop("server", None)
    if not ray_local.is_initialized():
        start_local_ray(ray_local)


def run(pack, **inputs):
    node = pack.nodes[NODE]
    node.GET_SCHEMA()
    hidden = sys.modules["comfy_api.latest._io"].HiddenHolder(unique_id="7", prompt={"1": {}}, extra_pnginfo=None)
    return type(node.__name__, (node,), {"hidden": hidden}).execute(model=pack.model, **inputs)


def voice(seconds: float = 0.6) -> dict:
    t = torch.arange(int(seconds * 16000)) / 16000
    return {"waveform": torch.sin(2 * torch.pi * 200 * t)[None, None], "sample_rate": 16000}


def test_the_batch_node_runs_on_the_cluster_and_cancel_ends_the_workers(pack) -> None:
    (pack.input / "v").mkdir()
    for k in range(3):
        write_clip(pack.input / "v" / f"clip_{k}.mkv", 8, seed=k)
    mm = sys.modules["comfy.model_management"]
    pack.on_text = lambda text: mm.interrupt_current_processing(True) if text.startswith("item 2/") else None
    with pytest.raises(mm.InterruptProcessingException):
        run(pack, videos="v", audio=voice(), **CLUSTER)
    pack.on_text = None
    mm.interrupt_current_processing(False)
    folder = next((pack.output / "ReSync").glob("batch_*"))
    report = json.loads((folder / "report.json").read_text())
    statuses = [i["status"] for i in report["items"]]
    assert "cancelled" in statuses and set(statuses) <= {"cancelled", "done"}
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # nothing half-made left

    out = run(pack, videos="v", audio=voice(), **CLUSTER)
    items = json.loads(Path(out.args[0]).read_text())["items"]
    assert [i["status"] in ("done", "skipped") for i in items] == [True] * 3
    made = [i["worker"] for i in items if i["status"] == "done"]
    assert made and set(made) <= {"w0", "w1"}  # made by the cluster's workers
    assert pack.progress[-1][0] == pack.progress[-1][1] > 0
