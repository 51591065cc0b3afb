"""Fakes of the ComfyUI modules the pack imports, and the fixtures that use them.

``host`` puts fake ``comfy_api.latest``, ``folder_paths`` and ``comfy.*`` modules into
``sys.modules`` over a temporary ComfyUI base folder (input/, output/, temp/, models/) and
imports the pack the way ComfyUI does: its folder as a package, under a name of our choosing,
so it works whatever the checkout folder is called. Everything is removed again afterwards.

    def test_x(host):
        out = host.run("ReSyncLoadVideo", video="clip.mp4")
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import cli_args, comfy_io, comfy_ui, folder_paths, latest, model_management, model_patcher, utils

REPO = Path(__file__).resolve().parents[2]
PACK_NAME = "resync_pack_under_test"


def import_pack(name: str = PACK_NAME) -> types.ModuleType:
    """Import the repository root as the package ``name`` (what ComfyUI does with custom_nodes/X)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def forget_pack(name: str = PACK_NAME) -> None:
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]


def _fake_modules() -> dict[str, types.ModuleType]:
    comfy_api = types.ModuleType("comfy_api")
    comfy_api.latest = latest  # type: ignore[attr-defined]
    comfy = types.ModuleType("comfy")
    comfy.model_management, comfy.model_patcher = model_management, model_patcher  # type: ignore[attr-defined]
    comfy.utils, comfy.cli_args = utils, cli_args  # type: ignore[attr-defined]
    return {
        "comfy_api": comfy_api,
        "comfy_api.latest": latest,
        "comfy_api.latest._io": comfy_io,
        "comfy_api.latest._ui": comfy_ui,
        "folder_paths": folder_paths,
        "comfy": comfy,
        "comfy.model_management": model_management,
        "comfy.model_patcher": model_patcher,
        "comfy.utils": utils,
        "comfy.cli_args": cli_args,
    }


@dataclass
class FakeHost:
    """The fake ComfyUI around one test: its folders, the loaded pack, and what the pack did."""

    base: Path
    pack: types.ModuleType
    nodes: dict[str, type] = field(default_factory=dict)
    prompt: Any = None
    extra_pnginfo: Any = None

    @property
    def input(self) -> Path:
        return self.base / "input"

    @property
    def output(self) -> Path:
        return self.base / "output"

    @property
    def models(self) -> Path:
        return self.base / "models"

    @property
    def lib(self) -> types.ModuleType:
        """The pack's own copy of the library (its exception classes are the ones raised)."""
        return importlib.import_module(f"{self.pack.__name__}.lipsync")

    @property
    def progress(self) -> list[tuple[int, int]]:
        return utils.updates

    @property
    def loaded(self) -> list:
        return model_management.loaded

    def interrupt(self) -> None:
        """What the Cancel button does: the next check raises InterruptProcessingException."""
        model_management.interrupt_current_processing(True)

    def schema(self, node_id: str) -> comfy_io.Schema:
        return self.nodes[node_id].GET_SCHEMA()

    def run(self, node_id: str, **inputs: Any) -> comfy_io.NodeOutput:
        """Execute a node as the host does: on a copy of the class, with the hidden inputs."""
        node = self.nodes[node_id]
        node.GET_SCHEMA()
        hidden = comfy_io.HiddenHolder(prompt=self.prompt, extra_pnginfo=self.extra_pnginfo)
        clone = type(node.__name__, (node,), {"hidden": hidden})
        out = clone.execute(**inputs)
        assert isinstance(out, comfy_io.NodeOutput)
        return out

    def validate(self, node_id: str, **inputs: Any) -> bool | str:
        return self.nodes[node_id].validate_inputs(**inputs)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fake ComfyUI with the pack loaded through its V3 entry point."""
    for name, module in _fake_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    folder_paths.reset(str(tmp_path))
    model_management.reset()
    utils.reset()
    cli_args.args.disable_metadata = False
    forget_pack()
    pack = import_pack()
    extension = asyncio.run(pack.comfy_entrypoint())
    nodes = {cls.GET_SCHEMA().node_id: cls for cls in asyncio.run(extension.get_node_list())}
    try:
        yield FakeHost(base=tmp_path, pack=pack, nodes=nodes)
    finally:
        forget_pack()
