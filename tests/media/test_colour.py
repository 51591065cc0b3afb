"""Colour end to end: the file's matrix, range, primaries and transfer are read (untagged video as
players assume), decoded to the RGB a player shows, and written back with the same description,
so a player shows the same picture (H.264: within 2 levels in flat areas; FFV1: exact)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from colour_clips import PATCHES, patch_image, patch_means, player_view, tags_for, write_clip
from conftest import CHECKPOINT, SHARED, need
from lipsync.media import colour
from lipsync.media.video import VideoWriter, iter_frames, picture_changes, probe

ROOT = Path(__file__).resolve().parents[2]

# (name, size, how it is stored, its tags) -> the description probe must report
CASES = {
    "untagged_hd_bt709": ((1280, 720), dict(matrix="bt709"), None, ("bt709", "limited", "bt709")),
    "untagged_sd_bt601_576": ((720, 576), dict(matrix="bt601"), None, ("bt470bg", "limited", "bt470bg")),
    "untagged_sd_bt601_480": ((640, 480), dict(matrix="bt601"), None, ("smpte170m", "limited", "smpte170m")),
    "tagged_sd_bt709": ((640, 480), dict(matrix="bt709"), tags_for("bt709"), ("bt709", "limited", "bt709")),
    "tagged_hd_bt601": ((1280, 720), dict(matrix="bt601"), tags_for("bt601"), ("smpte170m", "limited", "smpte170m")),
    "full_range_tagged_pc": ((640, 360), dict(matrix="bt709", full=True), tags_for("bt709", full=True),
                             ("bt709", "full", "bt709")),
    "full_range_yuvj_untagged": ((1280, 720), dict(matrix="bt709", full=True, pix_fmt="yuvj420p"), None,
                                 ("bt709", "full", "bt709")),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory):
    name = request.param
    (width, height), stored, tags, described = CASES[name]
    path = write_clip(tmp_path_factory.mktemp(name) / f"{name}.mp4", patch_image(width, height), **stored, tags=tags)
    return name, path, described


def test_probe_reads_or_assumes_the_description(case):
    name, path, (matrix, colour_range, primaries) = case
    info = probe(path)
    assert (info.colour.matrix, info.colour.range, info.colour.primaries) == (matrix, colour_range, primaries)
    assert info.colour.bit_depth == 8 and info.colour.hdr is None
    assert ("matrix" in info.colour.assumed) == ("untagged" in name)
    assert picture_changes(info) == []


def test_decoded_rgb_is_what_was_stored(case):
    """The frames the pipeline sees are the R'G'B' the clip was made from (within 2 levels: the
    8-bit Y'CbCr rounding), for every matrix and range; the old decoder missed by up to 20."""
    _, path, _ = case
    frame = next(iter_frames(path))
    got = patch_means(frame.astype(np.float64), len(PATCHES))
    assert np.abs(got - PATCHES * 255).max() <= 2.0


def test_written_output_shows_the_same_picture(case, tmp_path):
    """Written back through VideoWriter(like=info), a player shows the same picture: the same
    colour tags (stated, where the source left them to the player) and the same colours."""
    _, path, (matrix, colour_range, primaries) = case
    info = probe(path)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, info.fps, like=info) as writer:
        for frame in iter_frames(path):
            writer.write(frame)
    back = probe(out)
    assert (back.colour.matrix, back.colour.range, back.colour.primaries) == (matrix, colour_range, primaries)
    assert back.colour.assumed == ()
    before = patch_means(player_view(path) * 255, len(PATCHES))
    after = patch_means(player_view(out) * 255, len(PATCHES))
    assert np.abs(after - before).max() <= 2.0


def test_lossless_output_is_exact(case, tmp_path):
    _, path, _ = case
    info = probe(path)
    out = tmp_path / "out.mkv"
    frames = list(iter_frames(path))
    with VideoWriter(out, info.fps, like=info, lossless=True) as writer:
        for frame in frames:
            writer.write(frame)
    assert all(np.array_equal(a, b) for a, b in zip(frames, iter_frames(out), strict=True))
    assert probe(out).colour.primaries == info.colour.primaries


def test_plain_rgb_is_written_as_bt709(tmp_path):
    """Frames of unknown origin (ComfyUI images: sRGB/BT.709) are written tagged BT.709 limited
    and a player shows them unshifted (Save Video)."""
    image = np.rint(patch_image(640, 360) * 255).astype(np.uint8)
    out = tmp_path / "plain.mp4"
    with VideoWriter(out, 25) as writer:
        writer.write(image)
    info = probe(out)
    assert (info.colour.matrix, info.colour.range, info.colour.primaries, info.colour.transfer) == (
        "bt709", "limited", "bt709", "bt709")
    assert np.abs(patch_means(player_view(out) * 255, len(PATCHES)) - PATCHES * 255).max() <= 2.0


def test_guess_matrix_follows_players():
    assert colour.guess_matrix(1280, 720) == "bt709"
    assert colour.guess_matrix(1920, 1080) == "bt709"
    assert colour.guess_matrix(720, 576) == "bt470bg"
    assert colour.guess_matrix(720, 480) == "smpte170m"
    assert colour.guess_matrix(1024, 578) == "bt709"  # more than 576 rows
    assert colour.guess_matrix(256, 256) == "smpte170m"


def test_untagged_hd_case_through_the_cli(tmp_path):
    """The shared case: untagged 720p BT.709 colour bars above a face. Through the CLI, the picture
    outside the mouth looks the same in a player before and after (was: red 219,38,39 shown as
    203,18,40)."""
    folder = need(SHARED / "cases" / "untagged_hd_colour")
    video, audio = folder / "untagged_720p.mp4", folder / "speech_2s.wav"
    out = tmp_path / "out.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "lipsync", str(video), str(audio), "-o", str(out), "--checkpoint", str(need(CHECKPOINT)), "-q"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    info = probe(out)
    assert (info.colour.matrix, info.colour.primaries, info.colour.transfer, info.colour.range) == (
        "bt709", "bt709", "bt709", "limited")
    before, after = player_view(video, 10) * 255, player_view(out, 10) * 255
    bars = slice(20, 100)  # the 8 colour bars (160 columns each) above the face
    assert np.abs(patch_means(after, 8, bars, margin=12) - patch_means(before, 8, bars, margin=12)).max() <= 2.0
    top = slice(0, 200)
    assert np.abs(after[top] - before[top]).mean() <= 1.5


def test_segment_keeps_the_colours_of_the_untouched_frames(generator, tmp_path):
    """``segment`` shares the media layer: on the untagged HD case, frames outside the replaced
    range show exactly the source's colours in a player (lossless) and the output is tagged."""
    from lipsync.engine.segment import revoice_segment
    from lipsync.options import LipSyncOptions
    from lipsync.types import Box

    folder = need(SHARED / "cases" / "untagged_hd_colour")
    video, audio = folder / "untagged_720p.mp4", folder / "speech_2s.wav"
    out = tmp_path / "seg.mkv"
    opts = LipSyncOptions.of(lossless=True, box=Box(300, 600, 500, 800))
    result = revoice_segment(video, audio, out, generator, opts, start=0.4, end=0.8)
    assert not [w for w in result.warnings if w.startswith("untagged_720p.mp4:")]  # nothing of the picture lost
    source = list(iter_frames(video, frame_load_cap=5))
    written = list(iter_frames(out, frame_load_cap=5))
    assert all(np.array_equal(a, b) for a, b in zip(source, written, strict=True))
    before = patch_means(player_view(video, 2) * 255, 8, slice(20, 100), margin=12)
    after = patch_means(player_view(out, 2) * 255, 8, slice(20, 100), margin=12)
    assert np.abs(after - before).max() <= 1.0


def test_output_colour_of_rgb_and_hdr_sources():
    from lipsync.media.video import STILL_COLOUR
    from lipsync.types import ColourInfo

    assert colour.output_colour(STILL_COLOUR) == ColourInfo()  # sRGB stills: BT.709 as before
    ffv1 = ColourInfo(matrix="gbr", range="full", primaries="smpte170m", transfer="smpte170m")
    assert colour.output_colour(ffv1) == ColourInfo(primaries="smpte170m", transfer="smpte170m")
    hdr = ColourInfo(matrix="bt2020nc", primaries="bt2020", transfer="smpte2084", bit_depth=10)
    assert colour.output_colour(hdr) == colour.SDR_BT709
