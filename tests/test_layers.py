"""The house rules of ../shared/DESIGN.md, held by reading the source (imports inside functions
count): the library's layers point one way, nothing cycles, the public API is pinned."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lipsync

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lipsync"

LAYERS = {
    "types": 0, "errors": 0, "options": 0,
    "media": 1,
    "models": 2,
    "faces": 3,
    "composite": 4, "restore": 4,
    "engine": 5,
    "cluster": 6,
    "cli": 7,
}
"""vocabulary ← media ← models ← faces ← composite / restore ← engine ← cluster ← cli: a module may
import its own layer and the layers below (models read media, faces fetch detector weights through
the models' registry)."""


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path) -> set[str]:
    """Every lipsync module ``name`` imports, at any depth of the file."""
    is_pkg = path.name == "__init__.py"
    package = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "lipsync"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "lipsync":
                continue
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}
    return found


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


MODULES = _modules()
EDGES = {name: {t for t in _imports(name, path) if t in MODULES and t != name} for name, path in MODULES.items()}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) is not None))
def test_imports_point_down_the_layers(module: str) -> None:
    own = _layer(module)
    upward = sorted(t for t in EDGES[module] if (_layer(t) or 0) > own)  # type: ignore[operator]
    assert not upward, f"{module} (layer {own}) imports layers above it: {upward}"


def test_every_subpackage_has_a_layer() -> None:
    tops = {m.split(".")[1] for m in MODULES if m.count(".") >= 1}
    assert tops - {"__main__"} <= set(LAYERS), f"modules without a layer: {sorted(tops - set(LAYERS))}"


def test_no_import_cycles() -> None:
    def parent_package(child: str, parent: str) -> bool:
        return child.startswith(parent + ".")

    seen: set[str] = set()
    cycles: list[str] = []

    def walk(node: str, path: list[str]) -> None:
        if node in path:
            cycles.append(" -> ".join(path[path.index(node):] + [node]))
            return
        if node in seen:
            return
        seen.add(node)
        for nxt in sorted(EDGES.get(node, ())):
            # a package importing its own submodules (re-exports) is not a cycle of the design
            if parent_package(nxt, node) or parent_package(node, nxt):
                continue
            walk(nxt, path + [node])

    for module in sorted(MODULES):
        walk(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles[:5])


def test_the_library_never_imports_the_host() -> None:
    host = ("comfy", "comfy_api", "folder_paths", "server", "execution", "nodes")
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            assert not any(n.split(".")[0] in host for n in names), f"{name} imports the host: {names}"


PUBLIC_API = [
    "AudioError",
    "AudioFeatures",
    "Box",
    "Cancelled",
    "ClusterError",
    "ClusterOptions",
    "CompositeOptions",
    "CropSpec",
    "DependencyError",
    "Detection",
    "EncodeOptions",
    "FaceFrame",
    "FaceNotFoundError",
    "FaceOptions",
    "Generator",
    "InputError",
    "LipSyncError",
    "LipSyncOptions",
    "LipSyncResult",
    "ModelError",
    "ModelOptions",
    "OutputError",
    "RestoreOptions",
    "RunOptions",
    "SegmentResult",
    "SourceOptions",
    "SyncOptions",
    "VideoError",
    "VideoInfo",
    "VideoWriter",
    "Waveform",
    "__version__",
    "convert_to_safetensors",
    "create_detector",
    "iter_frames",
    "lipsync_video",
    "load_audio",
    "load_generator",
    "load_musetalk",
    "prepare_audio",
    "probe",
    "revoice_segment",
    "run_batch",
]


def test_public_api_is_pinned_and_every_name_resolves() -> None:
    assert lipsync.__all__ == PUBLIC_API, "change the public API on purpose: update PUBLIC_API with it"
    for name in lipsync.__all__:
        assert getattr(lipsync, name) is not None, name


def test_importing_the_package_is_cheap() -> None:
    import subprocess
    import sys

    code = "import sys, lipsync; print(sorted(m for m in ('torch', 'cv2', 'av') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_every_library_package_is_packaged() -> None:
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py")}
    assert packages == listed, f"pyproject.toml's packages differ from the folders: {sorted(packages ^ listed)}"
