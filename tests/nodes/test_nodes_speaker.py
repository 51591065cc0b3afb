"""Detect Faces with two people (issue #11, part 5): the face choice reaches the tracker, the
chosen person is kept when the sizes swap, and the preview marks the chosen face (thick, green)
apart from the other one (thin, grey). Fake host, scripted detector."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from fakehost import host  # noqa: F401  (fixture)

from lipsync.types import Detection

H, W = 120, 240
LEFT, RIGHT = (20.0, 20.0, 100.0, 100.0), (140.0, 20.0, 220.0, 100.0)


class TwoPeople:
    """Two faces whose sizes swap every 3 frames (the larger is 4 px wider)."""

    name = "two"

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, frame: np.ndarray) -> list[Detection]:
        grow = (0.0, 4.0) if (self.calls // 3) % 2 else (4.0, 0.0)
        self.calls += 1
        (a1, b1, a2, b2), (c1, d1, c2, d2) = LEFT, RIGHT
        return [Detection(c1, d1, c2 + grow[1], d2, 0.9), Detection(a1, b1, a2 + grow[0], b2, 0.9)]


@pytest.fixture
def two(host, monkeypatch):  # noqa: F811 (the fixture above)
    detector = TwoPeople()
    module = sys.modules[f"{host.pack.__name__}.nodes.faces"]
    monkeypatch.setattr(module, "create_detector", lambda name, models_dir=None: detector)
    return host


def centres(track) -> list[float]:
    return [(f.box.left + f.box.right) / 2 for f in track.faces]


GREEN, GREY = torch.tensor([0.0, 220 / 255, 0.0]), torch.tensor([150 / 255] * 3)


def test_detect_faces_keeps_one_person_and_marks_them(two) -> None:
    images = torch.zeros((9, H, W, 3))
    track, preview = two.run("ReSyncDetectFaces", images=images).args
    assert all(c < W / 2 for c in centres(track)), "the left face is the larger at the start"
    for k in range(9):
        assert torch.allclose(preview[k, 21, 60], GREEN)  # the chosen face's top edge, thick
        assert torch.allclose(preview[k, 20, 180], GREY)  # the other face's top edge, thin
        assert torch.allclose(preview[k, 21, 180], torch.zeros(3))


@pytest.mark.parametrize("settings", [{"face": "index", "face_index": 1}, {"face": "point", "face_x": 200, "face_y": 60}])
def test_detect_faces_picks_the_person_asked_for(two, settings: dict) -> None:
    images = torch.zeros((6, H, W, 3))
    track, preview = two.run("ReSyncDetectFaces", images=images, **settings).args
    assert all(c > W / 2 for c in centres(track))
    assert torch.allclose(preview[0, 21, 180], GREEN) and torch.allclose(preview[0, 20, 60], GREY)
