"""``python -m lipsync download musetalk``: MuseTalk 1.5's seven files into MODELS/musetalk/, from a
local server or a file:// mirror (never the internet); offline, every missing file is named with
its URL and its place."""

from __future__ import annotations

import functools
import http.server
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SHARED, need

from lipsync.cli import main
from lipsync.errors import ModelError
from lipsync.models import _download
from lipsync.models.folders import find_musetalk
from lipsync.models.registry import BUNDLES, REGISTRY

FIX = SHARED / "fixtures" / "musetalk_reference"
LAYOUT = [
    "musetalkV15/unet.pth", "musetalkV15/musetalk.json", "sd-vae/config.json", "sd-vae/diffusion_pytorch_model.bin",
    "whisper/config.json", "whisper/pytorch_model.bin", "whisper/preprocessor_config.json",
]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output clean."""


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An http.server on 127.0.0.1 serving the fixture's models folder (MuseTalk's layout)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    handler = functools.partial(_Quiet, directory=str(need(FIX / "models")))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_registry_lists_every_part_with_source_and_licence() -> None:
    specs = [REGISTRY[k] for k in BUNDLES["musetalk"]]
    assert sorted(f"{s.folder.removeprefix('musetalk/')}/{s.filename}" for s in specs) == sorted(LAYOUT)
    for spec in specs:
        assert spec.url.startswith("https://huggingface.co/") and spec.url.endswith("/" + spec.filename)
        assert spec.license and spec.sha256 is None  # no digest is published by the three repositories
    assert "any purpose" in REGISTRY["musetalk_unet"].license and "MIT" in REGISTRY["sd_vae"].license


def test_download_musetalk_over_http(server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models"
    assert main(["download", "musetalk", "--models-dir", str(models), "--url", server]) == 0
    for rel in LAYOUT:
        assert (models / "musetalk" / rel).read_bytes() == (FIX / "models" / rel).read_bytes(), rel
    assert "7 files" in capsys.readouterr().err
    assert find_musetalk(None, models) == models.resolve() / "musetalk"
    unet = models / "musetalk" / "musetalkV15"
    assert find_musetalk(unet) == find_musetalk(unet / "unet.pth") == find_musetalk(unet.parent) == unet.parent
    leftovers = [p for p in models.rglob("*") if "tmp" in p.name]
    assert leftovers == []


def test_download_from_a_file_mirror_keeps_existing_files(tmp_path: Path) -> None:
    models = tmp_path / "models"
    kept = models / "musetalk" / "whisper" / "config.json"
    kept.parent.mkdir(parents=True)
    kept.write_text("{}")
    paths = _download.fetch_bundle("musetalk", models, base_url=(need(FIX / "models")).as_uri())
    assert len(paths) == 7 and kept.read_text() == "{}"  # present: not fetched again
    assert (models / "musetalk" / "musetalkV15" / "unet.pth").stat().st_size == 4_826_955


def test_offline_names_each_missing_file_and_where_it_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    models = tmp_path / "models"
    present = models / "musetalk" / "sd-vae" / "config.json"
    present.parent.mkdir(parents=True)
    present.write_text("{}")
    with pytest.raises(ModelError) as info:
        _download.fetch_bundle("musetalk", models)
    text = str(info.value)
    assert "6 of the 7 files" in text and "offline" in text
    for key in BUNDLES["musetalk"]:
        spec = REGISTRY[key]
        dest = models / spec.folder / spec.filename
        if dest == present:
            assert f"-> {dest}\n" not in text + "\n"
        else:
            assert spec.url in text and f"-> {dest}" in text
    assert sorted(p.name for p in models.rglob("*") if p.is_file()) == ["config.json"]  # nothing half-written


def test_a_mirror_without_the_files_names_all_seven(server: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models"
    rc = main(["download", "musetalk", "--models-dir", str(models), "--url", server + "/nowhere"])
    err = capsys.readouterr().err
    assert rc == 1 and "7 of the 7 files" in err and "HTTP 404" in err
    assert str(models / "musetalk" / "musetalkV15" / "unet.pth") in err
