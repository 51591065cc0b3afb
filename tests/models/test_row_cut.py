"""The decoder cut (``lipsync.models.wav2lip.rows``): a caller that reads only the lower face gets
those rows bit for bit as the whole network makes them, from torch and from OpenVINO, and the
mouth paste never reads a row above ``composite.first_face_row``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lipsync.composite import first_face_row, paste_mouth
from lipsync.models.wav2lip import cpu
from lipsync.models.wav2lip.generator import OpenVinoGenerator, TorchGenerator, build_module, load_generator
from lipsync.models.wav2lip.preprocess import model_inputs
from lipsync.models.wav2lip.rows import ALIGN, CUT_LEVELS, cut_openvino_model, row_cut
from lipsync.models.wav2lip.checkpoint import read_state_dict
from lipsync.types import Box

from conftest import FIXTURE

CHECKPOINT = FIXTURE / "random_wav2lip.pth"
HAS_OPENVINO = cpu._openvino() is not None
CAPS = cpu.cpu_capabilities()
ROWS = (1, 20, 35, 36, 44, 49, 63, 70, 95)
"""Cuts tested: every kind of start (none cut, the 48-row tensor only, all three) and the ends."""

needs_checkpoint = pytest.mark.skipif(not CHECKPOINT.is_file(), reason="the shared Wav2Lip fixture is not here")


def test_the_cut_keeps_what_each_row_needs() -> None:
    assert row_cut(0).starts == (0, 0, 0) and row_cut(0).first_row == 0
    for rows_from in range(96):
        cut = row_cut(rows_from)
        assert cut.first_row <= rows_from
        assert all(start % step == 0 for start, step in zip(cut.starts, ALIGN))
        # Walking forward from the starts, every level still makes the rows the next one needs:
        # a 3x3 convolution spoils the top row of a cut tensor, an upsampling doubles the rows.
        exact_from = 0  # the first exact row of the current tensor, in full-size rows
        for start, size in zip(cut.starts, CUT_LEVELS):
            assert start >= exact_from, (rows_from, cut)
            if start or exact_from:  # once cut, the zero padding spoils rows at the cut
                exact_from = 2 * start + 2  # upsampled from its first row, then two residual convolutions
        assert rows_from >= (exact_from + 1 if exact_from else 0), (rows_from, cut)  # the output block's 3x3
    assert row_cut(44).first_row == 32 and row_cut(-5) == row_cut(0) and row_cut(500) == row_cut(95)


@needs_checkpoint
def test_torch_rows_from_are_the_whole_networks_bit_for_bit(expected) -> None:
    module = build_module(read_state_dict(CHECKPOINT))
    faces = torch.from_numpy(model_inputs(expected["faces96"][:5]))
    mel = torch.from_numpy(expected["mel_chunks"][:5]).reshape(-1, 1, 80, 16)
    with torch.inference_mode():
        whole = module(mel, faces)
        for rows_from in ROWS:
            cut = row_cut(rows_from)
            part = module(mel, faces, rows_from)
            assert part.shape == (5, 3, 96 - cut.first_row, 96)
            assert torch.equal(part[:, :, rows_from - cut.first_row :], whole[:, :, rows_from:]), rows_from


def _check_generator(generator: object, case: dict[str, np.ndarray]) -> None:
    crops, mel = case["faces96"][:12], case["mel_chunks"][:12]
    whole = generator.generate(crops, mel, 8)  # type: ignore[attr-defined]
    crops_unit = crops.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    for rows_from in ROWS:
        got = generator.generate(crops, mel, 8, rows_from=rows_from)  # type: ignore[attr-defined]
        assert got.shape == whole.shape
        np.testing.assert_array_equal(got[:, :, rows_from:], whole[:, :, rows_from:])
        np.testing.assert_array_equal(got[:, :, :rows_from], crops_unit[:, :, :rows_from])


@needs_checkpoint
def test_torch_generator_leaves_out_the_rows_above(expected) -> None:
    generator = TorchGenerator(build_module(read_state_dict(CHECKPOINT)))
    assert generator.partial_rows
    _check_generator(generator, expected)


@needs_checkpoint
@pytest.mark.skipif(not HAS_OPENVINO, reason="needs openvino")
@pytest.mark.parametrize("precision", ["exact", "fast", "fastest"])
def test_openvino_generator_leaves_out_the_rows_above(expected, weights, precision: str) -> None:
    if precision != "exact" and "bf16" not in CAPS or precision == "fastest" and ("int8" not in CAPS or not cpu._nncf_available()):
        pytest.skip("needs a BF16 CPU (fastest: VNNI and NNCF too)")
    generator = load_generator(weights, "cpu", precision=precision, exact_runtime="openvino")  # type: ignore[arg-type]
    assert isinstance(generator, OpenVinoGenerator)
    if not generator.ready:  # fastest: int8 calibrated on these faces first
        generator.calibrate(expected["faces96"], expected["mel_chunks"])
    assert generator.partial_rows
    _check_generator(generator, expected)


@pytest.mark.skipif(not HAS_OPENVINO, reason="needs openvino")
def test_a_model_not_laid_out_as_wav2lip_is_left_whole() -> None:
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([1, 3, 24, 24], ov.Type.f32, name="x")
    joined = ops.concat([x, x], 1)
    model = ov.Model([ops.relu(joined)], [x])
    assert not cut_openvino_model(model)
    assert len(model.inputs) == 1


def _random_face(rng: np.random.Generator, box: Box, with_landmarks: bool) -> np.ndarray | None:
    if not with_landmarks:
        return None
    h, w = box.height, box.width
    eyes_y, nose_y, mouth_y = rng.uniform(0.2, 0.45), rng.uniform(0.35, 0.65), rng.uniform(0.5, 0.9)
    points = np.array([[0.3, eyes_y], [0.7, eyes_y], [0.5, nose_y], [0.35, mouth_y], [0.65, mouth_y]], np.float32)
    points += rng.normal(0, 0.03, points.shape).astype(np.float32)
    return (points * np.float32([w, h]) + np.float32([box.left, box.top])).astype(np.float32)


@pytest.mark.parametrize("resample", ["lanczos", "bicubic", "bilinear"])
@pytest.mark.parametrize(("color_match", "blend"), [("off", "feather"), ("lab", "feather"), ("off", "seamless")])
def test_the_mouth_paste_reads_no_face_row_above_first_face_row(resample: str, color_match: str, blend: str) -> None:
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    cut, tight = 0, 0
    for trial in range(24):
        side = int(rng.integers(40, 420))
        height = min(470, int(side * rng.uniform(0.8, 1.25)))
        top, left = int(rng.integers(0, 480 - height)), int(rng.integers(0, 640 - min(side, 630)))
        box = Box(left=left, top=top, right=left + min(side, 630), bottom=top + height)
        landmarks = _random_face(rng, box, with_landmarks=trial % 3 != 0)
        face = rng.uniform(0, 1, (3, 96, 96)).astype(np.float32)
        first = first_face_row(box, landmarks, 96)
        assert 0 <= first <= 95
        other = face.copy()
        other[:, :first] = rng.uniform(0, 1, (3, first, 96)).astype(np.float32)
        kwargs = dict(resample=resample, color_match=color_match, blend=blend)
        a, _ = paste_mouth(frame, face, box, landmarks, **kwargs)  # type: ignore[arg-type]
        b, _ = paste_mouth(frame, other, box, landmarks, **kwargs)  # type: ignore[arg-type]
        np.testing.assert_array_equal(a, b, err_msg=f"{box} {landmarks} first row {first}")
        if first > 0:  # is the bound near the rows really read? Change 8 rows more.
            third = face.copy()
            third[:, : first + 8] = 1.0 - third[:, : first + 8]
            c, _ = paste_mouth(frame, third, box, landmarks, **kwargs)  # type: ignore[arg-type]
            cut, tight = cut + 1, tight + (not np.array_equal(a, c))
    # Most boxes leave rows out, and 8 rows below the bound are read in most of them (near the
    # mask's top edge its weight is small: a changed face may round to the same pixels).
    assert cut >= 16 and tight >= cut // 2, (cut, tight)
