"""HDR input (BT.2100 PQ and HLG, 10-bit BT.2020, as phones record): never a washed-out SDR file in
silence. The frames are tone-mapped to SDR BT.709 (``lipsync.media.colour``): everything up to 75 %
of HDR reference white (203 cd/m²) keeps its light and colour, highlights roll off below SDR
white, and the output is tagged SDR BT.709 with a warning naming the change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from colour_clips import HDR_PATCHES, hdr_linear, patch_means, write_hdr_clip
from conftest import CHECKPOINT, FIXTURE, need
from lipsync.media.video import VideoWriter, iter_frames, picture_changes, probe

ROOT = Path(__file__).resolve().parents[2]
NAMES = list(HDR_PATCHES)
BT2020_TO_BT709 = np.linalg.inv(np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]]))


def bt709_oetf(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0, 1)
    return np.where(v < 0.018, 4.5 * v, 1.099 * np.power(v, 0.45) - 0.099)


@pytest.fixture(scope="module", params=[("pq", "libx265"), ("hlg", "libx265"), ("pq", "libx264"), ("hlg", "libx264")],
                ids=["pq-hevc-main10", "hlg-hevc-main10", "pq-h264-high10", "hlg-h264-high10"])
def clip(request, tmp_path_factory):
    kind, codec = request.param
    return kind, write_hdr_clip(tmp_path_factory.mktemp(kind) / f"{kind}.mp4", kind, codec)


def sdr_patches(path: Path) -> dict[str, np.ndarray]:
    means = patch_means(next(iter_frames(path)).astype(np.float64), len(NAMES))
    return dict(zip(NAMES, means))


def test_probe_reports_hdr(clip):
    kind, path = clip
    info = probe(path)
    assert info.colour.hdr == kind
    assert (info.colour.primaries, info.colour.matrix, info.colour.bit_depth) == ("bt2020", "bt2020nc", 10)
    changes = picture_changes(info)
    assert len(changes) == 1 and "HDR" in changes[0] and "tone-mapped" in changes[0] and "SDR BT.709" in changes[0]


def test_light_below_the_knee_is_kept(clip):
    """Greys, skin and a saturated red up to 75 % of reference white come out as the BT.709 signal
    of the same light (relative to reference white): within 3 levels."""
    _, path = clip
    got = sdr_patches(path)
    for name in ("grey 20", "grey 100", "skin 80", "red 60", "black 0"):
        light709 = np.clip(BT2020_TO_BT709 @ hdr_linear(HDR_PATCHES[name]) / 203.0, 0, None)
        expected = bt709_oetf(light709) * 255
        assert np.abs(got[name] - expected).max() <= 3.0, (name, got[name], expected)


def test_highlights_roll_off_without_clipping(clip):
    _, path = clip
    got = {name: value.mean() for name, value in sdr_patches(path).items()}
    assert got["grey 100"] < got["white 203"] < got["highlight 600"] < got["highlight 1000"]
    assert 230 <= got["white 203"] <= 245  # reference white below SDR white: room for the highlights
    assert got["highlight 600"] < 254.5  # not clipped
    assert got["highlight 1000"] >= 254.5  # the peak is SDR white


def test_not_washed_out(clip):
    """What the old decoder made of it (the HDR signal shown as if it were SDR) is far off:
    reference white came out dark grey (PQ) or greyed, the red desaturated."""
    kind, path = clip
    with av.open(str(path)) as container:
        naive = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(np.float64)
    old = dict(zip(NAMES, patch_means(naive, len(NAMES))))
    new = sdr_patches(path)
    if kind == "pq":
        assert new["white 203"].mean() - old["white 203"].mean() > 60
    red_saturation = lambda rgb: (rgb.max() - rgb.min()) / max(rgb.max(), 1)  # noqa: E731
    assert red_saturation(new["red 60"]) > red_saturation(old["red 60"]) + 0.1


def test_output_is_sdr_bt709(clip, tmp_path):
    _, path = clip
    info = probe(path)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, info.fps, like=info) as writer:
        for frame in iter_frames(path):
            writer.write(frame)
    back = probe(out)
    assert back.colour.hdr is None
    assert (back.colour.primaries, back.colour.transfer, back.colour.matrix, back.colour.bit_depth) == (
        "bt709", "bt709", "bt709", 8)
    assert picture_changes(back) == []


def test_cli_warns_about_hdr(tmp_path):
    """Through the CLI an HDR input gives a one-line warning that names the change."""
    video = write_hdr_clip(tmp_path / "hlg.mp4", "hlg", width=256, height=256)
    out = tmp_path / "out.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "lipsync", str(video), str(need(FIXTURE / "speech_3s.wav")), "-o", str(out),
         "--checkpoint", str(need(CHECKPOINT)), "--box", "48", "232", "56", "200", "-q"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and "HDR (HLG" in lines[0] and "SDR BT.709" in lines[0]
    assert probe(out).colour.hdr is None


def test_batch_report_carries_the_warning(generator, tmp_path):
    """A batch item made from HDR input is done, and its line of report.json says what changed."""
    import json

    from lipsync.engine.batch.items import items_for_videos
    from lipsync.engine.batch.run import run_batch
    from lipsync.options import LipSyncOptions
    from lipsync.types import Box

    video = write_hdr_clip(tmp_path / "pq.mp4", "pq", width=256, height=256)
    opts = LipSyncOptions.of(box=Box(48, 232, 56, 200))
    report = run_batch(items_for_videos([video], need(FIXTURE / "speech_3s.wav")), tmp_path / "out", generator, opts,
                       make_zip=False)
    (item,) = json.loads(report.report_json.read_text())["items"]
    assert item["status"] == "done"
    assert len(item["warnings"]) == 1 and "HDR (PQ" in item["warnings"][0]
