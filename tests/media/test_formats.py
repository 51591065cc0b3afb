"""One list of media suffixes and one fps -> Fraction (``lipsync.media.formats``).

``frame_rate`` replaced four expressions; these tests pin that it gives the same Fraction as each
of them for the rates users and hosts pass, so no output changed.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from lipsync.media import formats
from lipsync.media.formats import frame_rate, nominal_rate

STANDARD = [24, 25, 30, 48, 50, 60, 120, 240]
NTSC = [Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120, 240)]
TYPED = [23.976, 29.97, 47.952, 59.94, 119.88, 14.985, 12.5, 7.5, 0.5, 0.1, 15.0, 25.0, 29.97002997, 59.94005994]
FLOATS = (
    [float(v) for v in STANDARD]
    + [float(f) for f in NTSC]  # what a host's float input holds for 30000/1001
    + TYPED
    + [k / 100 for k in range(10, 24001)]  # every rate typed with two decimals, 0.1 .. 240
    + [k / 1000 for k in range(100, 240001, 7)]  # and a spread of three-decimal ones
)


# The expressions frame_rate replaced, verbatim.
def old_as_rate(fps):  # nodes/_common.py
    return Fraction(float(fps)).limit_denominator(100000)


def old_as_fraction(fps):  # lipsync/media/audio.py
    return fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(100000)


def old_video_writer(fps):  # lipsync/media/_encode.py VideoWriter.__init__
    return Fraction(fps).limit_denominator(1_000_000) if isinstance(fps, float) else Fraction(fps)


def old_output_fps(fps):  # lipsync/engine/lipsync.py _output_fps (the engine moves to frame_rate)
    return Fraction(fps).limit_denominator(1001 * 1000)


@pytest.mark.parametrize("old", [old_as_rate, old_as_fraction, old_video_writer, old_output_fps])
def test_frame_rate_equals_every_replaced_expression_on_floats(old) -> None:
    differ = [v for v in FLOATS if frame_rate(v) != old(v)]
    assert differ == []


def test_frame_rate_on_ints_fractions_and_numpy_numbers() -> None:
    for n in STANDARD + [1, 1000]:
        for value in (n, np.int64(n), np.int32(n)):
            got = frame_rate(value)
            assert got == Fraction(n) and type(got) is Fraction
            assert got == old_as_fraction(value) == old_video_writer(value) == old_as_rate(value)
    for f in NTSC + [Fraction(240000, 9601), Fraction(1, 3)]:
        assert frame_rate(f) is f  # a Fraction is exact already
        assert frame_rate(f) == old_as_fraction(f) == old_video_writer(f) == old_output_fps(f)
    for f in NTSC:
        assert frame_rate(f) == old_as_rate(f)  # the node helper went through float and back
    for v in (29.97, 30000 / 1001, 25.0):
        assert frame_rate(np.float64(v)) == frame_rate(v)
        assert frame_rate(np.float32(v)) == old_as_rate(np.float32(v))
    assert frame_rate(29.97002997) == Fraction(30000, 1001)
    assert frame_rate(29.97) == Fraction(2997, 100)  # typed rates are taken at their word
    assert frame_rate(23.976) == Fraction(2997, 125)


@pytest.mark.parametrize("bad", [0, 0.0, -25, Fraction(0), float("nan"), float("inf"), "fast", None])
def test_frame_rate_refuses_what_is_not_a_positive_number(bad) -> None:
    with pytest.raises(ValueError, match="fps must be"):
        frame_rate(bad)


def test_nominal_rate_snaps_measured_rates_only_when_close() -> None:
    assert nominal_rate(Fraction(240000, 9601)) == 25
    assert nominal_rate(Fraction(2997, 100)) == Fraction(30000, 1001)
    assert nominal_rate(Fraction(30000, 1001)) == Fraction(30000, 1001)
    assert nominal_rate(Fraction(2433, 100)) == Fraction(2433, 100)  # no standard rate near 24.33


def test_one_list_of_suffixes() -> None:
    assert formats.FOLDER_VIDEO_SUFFIXES < formats.VIDEO_SUFFIXES
    assert not formats.VIDEO_SUFFIXES & formats.STILL_SUFFIXES
    assert formats.VIDEO_INPUT_SUFFIXES == formats.VIDEO_SUFFIXES | formats.STILL_SUFFIXES
    assert not formats.AUDIO_SUFFIXES & formats.VIDEO_INPUT_SUFFIXES
    assert formats.OUTPUT_SUFFIXES == tuple(formats.OUTPUT_CONTAINERS) and formats.OUTPUT_SUFFIXES[0] == ".mp4"
    assert set(formats.OUTPUT_SUFFIXES) <= formats.FOLDER_VIDEO_SUFFIXES
    for group in (formats.VIDEO_INPUT_SUFFIXES, formats.AUDIO_SUFFIXES, formats.OUTPUT_SUFFIXES):
        assert all(s.startswith(".") and s == s.lower() for s in group)


def test_the_old_names_are_the_one_list() -> None:
    from lipsync.engine.batch import items
    from lipsync.media import video

    assert items.VIDEO_SUFFIXES is formats.FOLDER_VIDEO_SUFFIXES
    assert items.AUDIO_SUFFIXES is formats.AUDIO_SUFFIXES and items.OUTPUT_SUFFIXES is formats.OUTPUT_SUFFIXES
    assert video.STILL_SUFFIXES is formats.STILL_SUFFIXES
