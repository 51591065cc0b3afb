"""The node pack's entry and surface, checked without a host (fakes from tests/fakehost).

Entry: V3 only (comfy_entrypoint, no NODE_CLASS_MAPPINGS), importable without ComfyUI and
without the optional extras. Surface: every id carries the pack prefix and none equals a core
id (the host silently drops those), every input has a tooltip, every node a description, all
categories sit under one pack category. Boundary: only nodes/ imports ComfyUI.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from fakehost import REPO, forget_pack, host, import_pack  # noqa: F401  (host is a fixture)

EXPECTED = [
    "ReSyncLoadVideo",
    "ReSyncAudioToMel",
    "ReSyncDetectFaces",
    "ReSyncLoadWav2LipModel",
    "ReSyncLoadMuseTalkModel",
    "ReSyncWav2LipGenerate",
    "ReSyncFaceRestore",
    "ReSyncComposite",
    "ReSyncSaveVideo",
    "ReSyncLipSyncVideo",
    "ReSyncRevoiceSegment",
    "ReSyncLipSyncBatch",
]

CORE_IDS = {
    "LoadVideo", "SaveVideo", "CreateVideo", "GetVideoComponents", "SaveWEBM", "LoadAudio", "SaveAudio",
    "SaveAudioMP3", "SaveAudioOpus", "PreviewAudio", "RecordAudio", "LoadImage", "LoadImageMask",
    "SaveImage", "PreviewImage", "ImageScale", "ImageScaleBy", "ImageUpscaleWithModel", "UpscaleModelLoader",
    "CheckpointLoaderSimple", "VAEDecode", "VAEEncode", "ImageBatch", "ImageCrop", "ImageBlend", "SplitImageWithAlpha",
}
"""Core ids in ComfyUI 0.3.64 next to which our nodes sit; the host scan below adds the rest."""

HOST_MODULES = ("comfy_api", "comfy", "folder_paths", "comfy_extras", "server", "execution", "nodes")


def core_ids_from(comfy_dir: Path) -> set[str]:
    """Node ids declared in a ComfyUI tree (V3 node_id=... and V1 mapping keys)."""
    ids: set[str] = set()
    files = [comfy_dir / "nodes.py", *sorted((comfy_dir / "comfy_extras").glob("*.py"))]
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        ids.update(re.findall(r'node_id\s*=\s*"([^"]+)"', text))
        ids.update(re.findall(r'^\s*"([A-Za-z0-9_]+)"\s*:\s*[A-Za-z_]', text, flags=re.M))
    return ids


def test_root_is_v3_only_and_imports_without_a_host() -> None:
    forget_pack()
    try:
        pack = import_pack()
        assert not hasattr(pack, "NODE_CLASS_MAPPINGS"), "the host would ignore comfy_entrypoint"
        assert callable(pack.comfy_entrypoint)
        assert pack.WEB_DIRECTORY == "./web"
        assert not any(name in sys.modules for name in ("comfy_api", "folder_paths")), "imported the host early"
    finally:
        forget_pack()


def test_root_init_does_not_touch_sys_path() -> None:
    tree = ast.parse((REPO / "__init__.py").read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
    }
    assert "path" not in names and "sys" not in names


def test_entry_lists_every_node(host) -> None:
    assert list(host.nodes) == EXPECTED


def test_ids_types_and_names_carry_the_prefix(host) -> None:
    for node_id in EXPECTED:
        schema = host.schema(node_id)
        assert node_id.startswith("ReSync") and schema.display_name.startswith("ReSync ")
        custom = [s.io_type for s in [*schema.inputs, *schema.outputs] if s.io_type.isupper() and "_" in s.io_type]
        for io_type in custom:
            if io_type not in ("UPSCALE_MODEL",):
                assert io_type.startswith("RESYNC_"), (node_id, io_type)


def test_no_id_equals_a_core_id(host) -> None:
    core = set(CORE_IDS)
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if comfy_dir and Path(comfy_dir, "nodes.py").is_file():
        core |= core_ids_from(Path(comfy_dir))
        assert {"LoadVideo", "SaveVideo", "LoadAudio"} <= core
    assert not set(host.nodes) & core


def test_every_input_has_a_tooltip_and_every_node_a_description(host) -> None:
    for node_id in EXPECTED:
        schema = host.schema(node_id)
        assert len(schema.description) > 60, node_id
        assert schema.category.startswith("ReSync/"), schema.category
        for item in schema.inputs:
            assert item.tooltip and len(item.tooltip) > 15, (node_id, item.id)
        for item in schema.outputs:
            assert item.display_name, (node_id, item.io_type)


def test_output_nodes_get_the_workflow_to_embed(host) -> None:
    for node_id in ("ReSyncSaveVideo", "ReSyncLipSyncVideo"):
        schema = host.schema(node_id)
        assert schema.is_output_node
        assert {h.value for h in schema.hidden} >= {"PROMPT", "EXTRA_PNGINFO"}


def test_model_folders_are_registered_with_add_model_folder_path(host) -> None:
    fp = sys.modules["folder_paths"]
    for name in ("wav2lip", "musetalk", "insightface", "facerestore_models"):
        assert fp.get_folder_paths(name) == [os.path.join(fp.models_dir, name)]


def test_user_paths_for_wav2lip_are_kept(host, tmp_path: Path) -> None:
    """extra_model_paths.yaml is read before custom nodes: its wav2lip path must survive."""
    fp = sys.modules["folder_paths"]
    fp.folder_names_and_paths["wav2lip"] = ([str(tmp_path / "mine")], set())
    asyncio.run(asyncio.run(host.pack.comfy_entrypoint()).get_node_list())
    assert fp.get_folder_paths("wav2lip") == [str(tmp_path / "mine"), os.path.join(fp.models_dir, "wav2lip")]


def test_pack_imports_when_optional_extras_are_missing(host, monkeypatch: pytest.MonkeyPatch) -> None:
    for extra in ("insightface", "onnxruntime", "spandrel"):
        monkeypatch.setitem(sys.modules, extra, None)  # import raises ImportError
    forget_pack()
    pack = import_pack()
    nodes = asyncio.run(asyncio.run(pack.comfy_entrypoint()).get_node_list())
    assert len(nodes) == len(EXPECTED)


def test_insightface_missing_is_explained_when_used(host, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setitem(sys.modules, "insightface", None)
    monkeypatch.setitem(sys.modules, "insightface.app", None)
    with pytest.raises(host.lib.DependencyError, match="pip install insightface onnxruntime"):
        host.run("ReSyncDetectFaces", images=torch.zeros((1, 32, 32, 3)), detector="insightface")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_only_nodes_import_the_host_and_the_library_imports_itself_relatively() -> None:
    for path in sorted((REPO / "lipsync").rglob("*.py")):
        used = _imports(path)
        assert not used & set(HOST_MODULES), (path, used & set(HOST_MODULES))
        assert "lipsync" not in used, f"{path}: import the library relatively (the pack is not always installed)"
    for path in sorted((REPO / "nodes").glob("*.py")):
        assert "lipsync" not in _imports(path), f"{path}: reach the library as ..lipsync"


def test_only_host_module_imports_the_host_and_no_node_module_borrows_private_names() -> None:
    """comfy_api's schema surface is for every node module; server, comfy.* and folder_paths go
    through nodes/_host.py. A helper two node modules share has a public name in a shared module."""
    for path in sorted((REPO / "nodes").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if path.name != "_host.py":
            assert not _imports(path) & {"server", "comfy", "folder_paths", "execution"}, path
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:  # not "from . import _host"
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports {private} from .{node.module}"


def test_pyproject_never_packages_a_top_level_nodes() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = config["tool"]["setuptools"]["packages"]
    assert "nodes" not in packages and all(p.split(".")[0] == "lipsync" for p in packages)


def test_pack_imports_in_a_fresh_interpreter_under_any_folder_name(tmp_path: Path) -> None:
    """As ComfyUI does: the folder (named anything) is imported as a package; no host needed."""
    link = tmp_path / "Some-Folder.name"
    link.symlink_to(REPO, target_is_directory=True)
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('x', {str(link / '__init__.py')!r}, "
        f"submodule_search_locations=[{str(link)!r}])\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['x'] = m; spec.loader.exec_module(m)\n"
        "import importlib; importlib.import_module('x.lipsync.engine.graph'); importlib.import_module('x.lipsync.engine.lipsync')\n"
        "assert 'lipsync' not in sys.modules, 'the library was imported by its absolute name'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


WORKFLOWS = sorted(p.stem for p in (REPO / "workflows").glob("*.json"))
CORE_IN_WORKFLOWS = {"LoadAudio", "PreviewImage", "TrimAudioDuration", "ImageScaleBy", "UpscaleModelLoader",
                     "ImageUpscaleWithModel", "CreateVideo", "SaveVideo", "LoadVideo", "MarkdownNote", "Note"}


def test_workflows_ship_as_ui_templates_with_api_twins() -> None:
    assert WORKFLOWS == ["resync_basic", "resync_chaining", "resync_long_video", "resync_musetalk"]
    assert not (REPO / "example_workflows").exists(), "the template browser would list them twice"
    for name in WORKFLOWS:
        ui = json.loads((REPO / "workflows" / f"{name}.json").read_text())
        api = json.loads((REPO / "workflows" / "api" / f"{name}.json").read_text())
        assert {"nodes", "links", "version"} <= set(ui) and "nodes" not in api
        assert all(set(node) >= {"class_type", "inputs"} for node in api.values())
        types = {n["type"] for n in ui["nodes"]} | {n["class_type"] for n in api.values()}
        assert types <= set(EXPECTED) | CORE_IN_WORKFLOWS, types
        assert any("non-commercial" in str(n.get("widgets_values")) for n in ui["nodes"] if "Note" in n["type"])


def test_templates_fit_the_node_schemas(host) -> None:
    """Our nodes' widget values line up with their widgets; links carry our sockets' types."""
    for name in WORKFLOWS:
        ui = json.loads((REPO / "workflows" / f"{name}.json").read_text())
        nodes = {n["id"]: n for n in ui["nodes"]}
        for node in nodes.values():
            if node["type"] not in host.nodes:
                continue
            schema = host.schema(node["type"])
            widgets = [i.id for i in schema.inputs if i.widget]
            widgets += [None for i in schema.inputs if getattr(i, "upload", None) is not None]
            assert len(node["widgets_values"]) == len(widgets), (name, node["type"])
        for _, src, src_slot, dst, dst_slot, link_type in ui["links"]:
            if nodes[src]["type"] in host.nodes:
                assert host.schema(nodes[src]["type"]).outputs[src_slot].io_type == link_type, (name, src)
            if nodes[dst]["type"] in host.nodes:
                socket = nodes[dst]["inputs"][dst_slot]["name"]
                inputs = {i.id: i for i in host.schema(nodes[dst]["type"]).inputs}
                assert inputs[socket].io_type == link_type, (name, dst, socket)
