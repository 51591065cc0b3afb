"""Tests of the download helper behind the detectors' model files (local server and file:// only;
never the internet)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lipsync.errors import ModelError
from lipsync.faces import (
    REGISTRY,
    download,
    ensure_file,
)
from lipsync.models import _download

# --------------------------------------------------------------------------------------------
# download helper (local server and file:// only; never the internet)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        """Keep the test output clean."""


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, bytes]]:
    """An http.server on 127.0.0.1 serving one file; yields (base URL, the file's bytes)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "www"
    root.mkdir()
    payload = os.urandom(200_000)
    (root / "model.onnx").write_bytes(payload)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", payload
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_over_http_checks_the_hash(served: tuple[str, bytes], tmp_path: Path) -> None:
    base, payload = served
    dest = tmp_path / "models" / "facedetect" / "model.onnx"
    got = download(f"{base}/model.onnx", dest, sha256=hashlib.sha256(payload).hexdigest())
    assert got == dest and dest.read_bytes() == payload
    assert _leftovers(dest.parent) == ["model.onnx"]  # no temporary file left


def test_download_with_a_wrong_hash_keeps_nothing(
    served: tuple[str, bytes], tmp_path: Path
) -> None:
    base, _ = served
    dest = tmp_path / "m" / "model.onnx"
    with pytest.raises(ModelError, match="sha256") as info:
        download(f"{base}/model.onnx", dest, sha256="0" * 64)
    assert str(dest) in str(info.value)
    assert _leftovers(dest.parent) == []


def test_download_http_404_names_url_and_destination(
    served: tuple[str, bytes], tmp_path: Path
) -> None:
    base, _ = served
    dest = tmp_path / "m" / "absent.onnx"
    with pytest.raises(ModelError, match="HTTP 404") as info:
        download(f"{base}/absent.onnx", dest)
    assert f"{base}/absent.onnx" in str(info.value) and str(dest) in str(info.value)
    assert _leftovers(dest.parent) == []


def test_download_from_a_file_url(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"weights" * 1000)
    dest = tmp_path / "out" / "w.bin"
    download(src.as_uri(), dest, sha256=hashlib.sha256(src.read_bytes()).hexdigest())
    assert dest.read_bytes() == src.read_bytes()


def test_unreachable_url_says_where_to_put_the_file(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dest = tmp_path / "facedetect" / "face.onnx"
    with pytest.raises(ModelError, match="by hand") as info:
        download(f"http://127.0.0.1:{port}/face.onnx", dest, timeout=5)
    assert str(dest) in str(info.value) and f"127.0.0.1:{port}" in str(info.value)
    with pytest.raises(ModelError, match="by hand"):
        download((tmp_path / "nope.bin").as_uri(), dest)
    assert _leftovers(dest.parent) == []


def test_ensure_file_uses_the_registry_and_an_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "yunet.onnx"
    src.write_bytes(b"x" * 1234)
    spec = _download.RemoteFile("face.onnx", src.as_uri(), hashlib.sha256(b"x" * 1234).hexdigest(),
                                1234, "MIT")
    monkeypatch.setitem(_download.REGISTRY, "test_model", spec)
    path = ensure_file("test_model", tmp_path / "models")
    assert path.read_bytes() == b"x" * 1234
    src.unlink()  # present now: no second download
    assert ensure_file("test_model", tmp_path / "models") == path
    with pytest.raises(ModelError, match="Unknown model file"):
        ensure_file("nope", tmp_path)


def test_registry_pins_yunet() -> None:
    spec = REGISTRY["yunet_2023mar"]
    assert spec.sha256 is not None and len(spec.sha256) == 64
    assert spec.url.startswith("https://") and spec.license == "MIT"


def test_one_registry_lists_every_downloadable_file() -> None:
    from lipsync.models.registry import WEIGHTS, remote_file

    assert list(WEIGHTS) == ["wav2lip_gan", "wav2lip"]  # the CLI's choices, the default first
    for key, spec in REGISTRY.items():
        assert remote_file(key) is spec and spec.url.startswith("https://") and spec.url.endswith(spec.filename)
        assert spec.folder.split("/")[0] in ("facedetect", "wav2lip", "musetalk") and spec.license and spec.note
        for digest in (spec.sha256, spec.listed_sha256):
            assert digest is None or (len(digest) == 64 and int(digest, 16) >= 0)
    assert all(WEIGHTS[k] is REGISTRY[k] and "non-commercial" in WEIGHTS[k].license for k in WEIGHTS)
    assert _download.REGISTRY is REGISTRY  # ensure_file reads the same registry


# --------------------------------------------------------------------------------------------
# the one models-folder lookup (lipsync.models.folders)


def test_models_folders_search_order_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lipsync.models import folders

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIPSYNC_MODELS", str(tmp_path / "env"))
    dirs = folders.models_dirs()
    assert dirs[:2] == [(tmp_path / "env").resolve(), (tmp_path / "models").resolve()]
    assert dirs[-1] == folders.user_cache_dir().resolve() and len(dirs) == len(set(dirs))
    assert folders.default_models_dir() == tmp_path / "env"
    monkeypatch.delenv("LIPSYNC_MODELS")
    assert folders.default_models_dir() == folders.user_cache_dir()  # no ./models here
    (tmp_path / "models").mkdir()
    assert folders.default_models_dir() == tmp_path / "models"


def test_find_weights_prefers_known_names_then_any_suffix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lipsync.models import folders

    monkeypatch.setattr(folders, "models_dirs", lambda: [tmp_path / "a", tmp_path / "b"])
    (tmp_path / "b" / "kind").mkdir(parents=True)
    (tmp_path / "b" / "kind" / "z.pth").write_bytes(b"x")
    assert folders.find_weights("kind", ["best.pth"], suffixes=(".pth",)) == tmp_path / "b" / "kind" / "z.pth"
    (tmp_path / "b" / "kind" / "best.pth").write_bytes(b"x")
    assert folders.find_weights("kind", ["best.pth"], suffixes=(".pth",)).name == "best.pth"
    assert folders.find_weights("kind", ["best.pth"], "mine.pth") == Path("mine.pth")
    with pytest.raises(ModelError, match="No thing found") as info:
        folders.find_weights("other", ["x.pth"], what="thing", help_text="Put one there.")
    assert str(tmp_path / "a" / "other") in str(info.value) and str(info.value).endswith("Put one there.")
