"""The nodes' option widgets against the library's option groups (nodes/_options.py), with the
fake host: every node offers each setting of the groups it declares (or says why not), with the
dataclass default; old inputs keep their names and places, so saved workflows still load.
"""

from __future__ import annotations

import importlib
import json
from contextlib import contextmanager
from dataclasses import fields
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch
import workflow_check
from fakehost import REPO, host  # noqa: F401  (host is a fixture)

DECLARING = {
    "ReSyncAudioToMel",
    "ReSyncDetectFaces",
    "ReSyncFaceRestore",
    "ReSyncComposite",
    "ReSyncLipSyncVideo",
    "ReSyncRevoiceSegment",
    "ReSyncLipSyncBatch",
    "ReSyncLoadWav2LipModel",
}
"""The nodes that build options from the groups."""

BEFORE = {
    "ReSyncLoadVideo": ["video", "frame_load_cap", "skip_first_frames", "select_every_nth"],
    "ReSyncAudioToMel": ["audio", "fps", "frame_count", "length_policy", "offset_ms"],
    "ReSyncDetectFaces": ["images", "detector", "missing_face", "face", "face_index", "pad_top", "pad_bottom",
                          "pad_left", "pad_right", "smoothing", "smooth_window", "detect_every", "fixed_box", "preview"],
    "ReSyncLoadWav2LipModel": ["ckpt_name", "precision"],
    "ReSyncWav2LipGenerate": ["images", "faces", "mel", "model", "batch_size"],
    "ReSyncFaceRestore": ["images", "model_name", "strength", "fidelity", "output_size"],
    "ReSyncComposite": ["images", "faces", "face_track", "mode", "feather", "color_match", "blend"],
    "ReSyncSaveVideo": ["images", "fps", "filename_prefix", "crf", "audio"],
    "ReSyncLipSyncVideo": ["video", "audio", "model", "mode", "feather", "color_match", "blend", "restore_model",
                           "restore_strength", "restore_fidelity", "detector", "missing_face", "face", "face_index",
                           "pad_bottom", "fixed_box", "smoothing", "length_policy", "audio_offset_ms", "fps",
                           "batch_size", "detect_every", "filename_prefix", "video_input"],
    "ReSyncRevoiceSegment": ["video", "audio", "model", "start_s", "end_s", "crossfade_ms", "ramp_frames", "mode",
                             "detector", "missing_face", "filename_prefix", "video_input"],
    "ReSyncLipSyncBatch": ["model", "videos", "audios", "manifest", "mode", "detector", "missing_face",
                           "length_policy", "batch_size", "batch_name", "make_zip", "audio"],
}
"""Each node's inputs when workflows were first saved with it: widget values are stored by
position, so these keep their names and order, and whatever comes after them is optional."""


def pack_module(host: Any, name: str) -> ModuleType:
    return importlib.import_module(f"{host.pack.__name__}.{name}")


def missing_settings(options: ModuleType, uses: Any, inputs: dict[str, Any]) -> list[str]:
    """What a node with ``inputs`` (schema inputs by name) lacks of what ``uses`` declares: a
    setting neither offered nor left with a reason, or a widget whose default is not the field's."""
    problems = []
    for group in uses.groups:
        names = options.widget_names(group, uses.widgets)
        defaults = options.widget_defaults(group, uses.widgets)
        for f in fields(group):
            if f.name in uses.left:
                continue
            for name in names[f.name]:
                if name not in inputs:
                    problems.append(f"no input {name} for {group.__name__}.{f.name} (offer it, or say why in left)")
                elif inputs[name].default != defaults[name]:
                    problems.append(f"{name} defaults to {inputs[name].default!r}, {group.__name__}.{f.name} to "
                                    f"{defaults[name]!r}")
    return problems


def test_the_nodes_that_build_options_declare_them(host) -> None:
    declared = {node_id for node_id, cls in host.nodes.items() if getattr(cls, "USES", None) is not None}
    assert declared == DECLARING


@pytest.mark.parametrize("node_id", sorted(DECLARING))
def test_a_node_offers_every_setting_of_its_groups_with_the_default(host, node_id: str) -> None:
    options = pack_module(host, "nodes._options")
    uses = host.nodes[node_id].USES
    inputs = {i.id: i for i in host.schema(node_id).inputs}
    assert missing_settings(options, uses, inputs) == []


@pytest.mark.parametrize("node_id", sorted(DECLARING))
def test_what_a_node_leaves_out_exists_and_says_why(host, node_id: str) -> None:
    groups = pack_module(host, "lipsync.options").GROUPS
    uses = host.nodes[node_id].USES
    used_fields = {f.name for g in uses.groups for f in fields(g)}
    for name, reason in uses.left.items():
        assert name in used_fields or (name in groups and groups[name] not in uses.groups), (node_id, name)
        assert len(reason) > 20, (node_id, name)
    if uses.job:  # a whole job: every group is offered or left with a reason
        assert all(cls in uses.groups or attr in uses.left for attr, cls in groups.items()), node_id


@pytest.mark.parametrize("node_id", sorted(DECLARING))
def test_the_widget_defaults_give_the_default_options(host, node_id: str) -> None:
    options = pack_module(host, "nodes._options")
    uses = host.nodes[node_id].USES
    inputs = {i.id: i for i in host.schema(node_id).inputs}
    for group in uses.groups:
        names = options.widget_names(group, uses.widgets)
        shown = {n: inputs[n].default for f in fields(group) if f.name not in uses.left for n in names[f.name]}
        assert options.options_from_inputs(group, shown, uses.widgets) == group(), (node_id, group.__name__)


def test_a_missing_setting_or_a_wrong_default_is_caught(host) -> None:
    options = pack_module(host, "nodes._options")
    lib = pack_module(host, "lipsync.options")
    uses = options.Uses(groups=(lib.FaceOptions,))
    inputs = {i.id: i for i in options.option_inputs(lib.FaceOptions, skip=("smooth_window",))}
    inputs["pad_bottom"].default = 0
    problems = missing_settings(options, uses, inputs)
    assert len(problems) == 2 and "pad_bottom" in problems[0] and "smooth_window" in problems[1]
    left = options.Uses(groups=(lib.FaceOptions,), left={"smooth_window": "because", "pads": "because"})
    assert missing_settings(options, left, inputs) == []


@pytest.mark.parametrize("node_id", sorted(BEFORE))
def test_old_inputs_keep_their_names_and_places_and_new_ones_are_optional(host, node_id: str) -> None:
    inputs = host.schema(node_id).inputs
    before = BEFORE[node_id]
    assert [i.id for i in inputs[: len(before)]] == before
    assert all(i.optional for i in inputs[len(before) :]), node_id
    first_optional = next((k for k, i in enumerate(inputs) if i.optional), len(inputs))
    assert all(i.optional for i in inputs[first_optional:]), "the host lists required inputs first"


def test_option_inputs_map_each_field_to_a_widget_and_back(host) -> None:
    options = pack_module(host, "nodes._options")
    lib = pack_module(host, "lipsync.options")
    box_type = pack_module(host, "lipsync.types").Box
    faces = {i.id: i for i in options.option_inputs(lib.FaceOptions)}
    assert [faces[f"pad_{side}"].default for side in ("top", "bottom", "left", "right")] == [0, 10, 0, 0]
    assert faces["fixed_box"].default == "" and faces["face"].options == ["largest", "index", "closest", "point"]
    assert (faces["face_x"].default, faces["face_y"].default) == (0, 0)
    point = options.options_from_inputs(lib.FaceOptions, {"face": "point", "face_x": 470, "face_y": 200})
    assert (point.face_choice, point.face_point) == ("point", (470, 200))
    assert faces["detect_every"].min == 1 and faces["detect_every"].max == 100
    assert faces["face_index"].tooltip == "With face choice index: 0 = the leftmost face."
    chosen = options.options_from_inputs(lib.FaceOptions, {"pad_left": 4, "fixed_box": "1, 9, 2, 8", "face": "index"})
    assert chosen.pads == (0, 10, 4, 0) and chosen.box == box_type(1, 9, 2, 8) and chosen.face_choice == "index"
    source = options.option_inputs(lib.SourceOptions, only=("fps", "frame_load_cap"))
    assert [(i.id, i.default) for i in source] == [("fps", 0.0), ("frame_load_cap", 0)]
    assert source[1].max == options.INT_MAX, "the frontend would cap an INT without max at 2048"
    assert options.options_from_inputs(lib.SourceOptions, {"fps": 0.0}).fps is None
    assert options.options_from_inputs(lib.SourceOptions, {"fps": 29.97}).fps == 29.97
    restore = options.option_inputs(lib.RestoreOptions, overrides={"restore_model": {"options": lambda: ["a.pth"]}})
    assert restore[0].options == ["none", "a.pth"] and restore[0].default == "none"
    assert options.options_from_inputs(lib.RestoreOptions, {"restore_model": "none"}).restore is None
    assert options.options_from_inputs(lib.RestoreOptions, {"restore_model": "a.pth"}).restore == "a.pth"
    renamed = {"audio_offset_ms": {"name": "offset_ms"}}
    assert options.option_inputs(lib.SyncOptions, overrides=renamed)[0].id == "offset_ms"
    assert options.options_from_inputs(lib.SyncOptions, {"offset_ms": 40}, renamed).audio_offset_ms == 40.0


def test_wrong_inputs_are_refused(host) -> None:
    options = pack_module(host, "nodes._options")
    lib = pack_module(host, "lipsync.options")
    with pytest.raises(TypeError, match="padd_top"):
        options.options_from_inputs(lib.FaceOptions, {"padd_top": 3})
    with pytest.raises(KeyError, match="no field or widget"):
        options.option_inputs(lib.FaceOptions, only=("pad_middle",))
    with pytest.raises(host.lib.InputError, match="choose one of"):
        options.options_from_inputs(lib.CompositeOptions, {"mode": "sideways"})
    with pytest.raises(host.lib.InputError, match="fixed_box"):
        options.options_from_inputs(lib.FaceOptions, {"fixed_box": "1, 2"})
    uses = host.nodes["ReSyncLipSyncVideo"].USES
    with pytest.raises(TypeError, match="lossless"):
        options.lipsync_options(uses, {"lossless": True})
    opts = options.lipsync_options(uses, {"pad_top": 3, "resample": "bicubic", "fps": 0.0}, models_dir="/m")
    assert opts.faces.pads == (3, 10, 0, 0) and opts.composite.resample == "bicubic" and opts.source.fps is None
    assert opts.model.models_dir == "/m"


def object_info(host) -> dict[str, dict]:
    """What /object_info would say about our nodes (core nodes: no widgets), for workflow_check."""
    info: dict[str, dict] = {}
    for node_id in host.nodes:
        schema = host.schema(node_id)
        entries: dict[str, dict] = {"required": {}, "optional": {}}
        for item in schema.inputs:
            extra = {"tooltip": item.tooltip}
            upload = getattr(item, "upload", None)
            if upload is not None:
                extra[upload.value] = True
            kind = item.options if item.io_type == "COMBO" else item.io_type
            entries["optional" if item.optional else "required"][item.id] = [kind, extra]
        info[node_id] = {"input": entries, "input_order": {k: list(v) for k, v in entries.items()},
                         "output": [o.io_type for o in schema.outputs]}
    return info


@pytest.mark.parametrize("name", ["resync_basic", "resync_chaining", "resync_long_video", "resync_musetalk"])
def test_templates_and_their_api_twins_carry_every_widget(host, name: str) -> None:
    info = object_info(host)
    ui = json.loads((REPO / "workflows" / f"{name}.json").read_text())
    api = json.loads((REPO / "workflows" / "api" / f"{name}.json").read_text())
    empty = {"input": {}, "input_order": {}, "output": []}
    prompt = workflow_check.ui_to_api(ui, {n["type"]: info.get(n["type"], empty) for n in ui["nodes"]})
    for node in ui["nodes"]:
        if node["type"] in host.nodes:
            slots = workflow_check.widget_slots(info[node["type"]])
            assert len(node["widgets_values"]) == len(slots), (name, node["type"])
            assert set(prompt[str(node["id"])]["inputs"]) == set(api[str(node["id"])]["inputs"]), (name, node["id"])


class Reached(Exception):
    """Raised by a stand-in for the library's job function once it has the options."""


@pytest.mark.parametrize(("node_id", "module", "job"), [
    ("ReSyncLipSyncVideo", "nodes.lipsync", "lipsync_video"),
    ("ReSyncRevoiceSegment", "nodes.segment", "revoice_segment"),
    ("ReSyncLipSyncBatch", "nodes.batch", "run_batch"),
])
def test_appended_settings_reach_the_job(host, monkeypatch: pytest.MonkeyPatch, node_id: str, module: str,
                                         job: str) -> None:
    node_module = pack_module(host, module)
    job_options = pack_module(host, "lipsync.options").LipSyncOptions
    seen: list[Any] = []

    def stand_in(*args: Any, **_: Any) -> None:
        seen.extend(a for a in args if isinstance(a, job_options))
        raise Reached

    @contextmanager
    def some_video(video: str, video_input: Any):
        yield "clip.mp4"

    monkeypatch.setattr(node_module, job, stand_in)
    if hasattr(node_module, "video_file"):
        monkeypatch.setattr(node_module, "video_file", some_video)
        monkeypatch.setattr(node_module, "probe", lambda path: SimpleNamespace(width=64, height=48))
    if hasattr(node_module, "batch_items"):
        monkeypatch.setattr(node_module, "batch_items", lambda *args: [])
    restorers = host.models / "facerestore_models"
    restorers.mkdir(parents=True, exist_ok=True)
    (restorers / "face.pth").write_bytes(b"")
    settings = {"pad_top": 3, "pad_right": 2, "smooth_window": 7, "resample": "bicubic", "smoothing": "reference"}
    if node_id != "ReSyncLipSyncVideo":  # Lip-Sync Video places the restorer through the host (test_restore)
        settings |= {"restore_model": "face.pth", "restore_strength": 0.5, "face": "index", "face_index": 1}
    inputs = {"model": SimpleNamespace(name="tiny", generator=lambda: None), **settings}
    if node_id != "ReSyncLipSyncBatch":
        inputs["audio"] = {"waveform": torch.zeros((1, 1, 1600)), "sample_rate": 16000}
    with pytest.raises(Reached):
        host.run(node_id, **inputs)
    (opts,) = seen
    assert opts.faces.pads == (3, 10, 0, 2) and opts.faces.smooth_window == 7 and opts.faces.smoothing == "reference"
    assert opts.composite.resample == "bicubic"
    if node_id != "ReSyncLipSyncVideo":
        assert opts.restore.restore == str(restorers / "face.pth") and opts.restore.restore_strength == 0.5
        assert (opts.faces.face_choice, opts.faces.face_index) == ("index", 1)
