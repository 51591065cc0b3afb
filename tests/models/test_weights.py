"""Fetching the Wav2Lip weights: atomic, checked like any checkpoint, clear offline — never the internet here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import need, CHECKPOINT
from lipsync.cli import main
from lipsync.errors import ModelError
from lipsync.models.wav2lip.fetch import fetch_wav2lip


def test_fetch_from_a_file_url(tmp_path: Path) -> None:
    src = tmp_path / "mirror" / "wav2lip_gan.pth"
    src.parent.mkdir()
    shutil.copy(need(CHECKPOINT), src)
    got = fetch_wav2lip("wav2lip_gan", tmp_path / "models", url=src.as_uri())
    assert got == tmp_path / "models" / "wav2lip" / "wav2lip_gan.pth"
    assert got.stat().st_size == src.stat().st_size
    assert fetch_wav2lip("wav2lip_gan", tmp_path / "models", url="http://127.0.0.1:9/never") == got  # kept


def test_a_download_that_is_not_wav2lip_is_deleted(tmp_path: Path) -> None:
    bogus = tmp_path / "page.html"
    bogus.write_text("<html>rate limited</html>")
    with pytest.raises(ModelError, match="wav2lip_gan.pth"):
        fetch_wav2lip("wav2lip_gan", tmp_path / "models", url=bogus.as_uri())
    assert not list((tmp_path / "models" / "wav2lip").iterdir())


def test_offline_says_where_to_put_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["download", "--models-dir", str(tmp_path), "--url", "http://127.0.0.1:9/wav2lip_gan.pth"])
    err = capsys.readouterr().err
    assert rc == 1
    assert str(tmp_path / "wav2lip" / "wav2lip_gan.pth") in err
    assert "non-commercial" in err
