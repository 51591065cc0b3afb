"""Which rows of the Wav2Lip decoder a caller that reads only the lower face needs (torch-free).

The mouth paste reads only the generated face's rows from about the nose down (from row ~43 of
96 for a plain box, ``lipsync.composite.first_face_row``), yet the decoder's last three levels
(24, 48 and 96 rows), over half of the network's arithmetic, are computed for the whole face.
Their convolutions are local, so the rows a caller reads depend only on the rows above them
within a few pixels per layer: ``row_cut`` says how many rows of each level can be left out. The
torch module (``Wav2Lip.forward(..., rows_from=)``) and the OpenVINO network
(``cpu.OpenVinoNetwork``, through ``cut_openvino_model``) cut their tensors there; the rows from
``rows_from`` on are then the very numbers of the whole network, bit for bit (torch and
OpenVINO; float32, bfloat16 and int8; ``tests/models/test_row_cut.py``). From row 43 the network
alone runs 1.20× faster in every precision (``bench/bench_cpu.py``: OpenVINO float32 26.1 → 31.4
frames/s on 2 cores).

Rows are counted in the 96-row output. Working back from it, a row needs, in the level below:

- the output block's 3×3 convolution: one row above;
- each level's two residual 3×3 convolutions (zero-padded, so a cut tensor's top row is wrong
  after each): one row above each;
- the level's ``ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1)``: output row ``o``
  is made from input rows ``(o - 1) // 2`` to ``(o + 1) // 2``, and a cut input starting at row
  ``s`` gives output rows from ``2 s`` on, each complete (an even row has one input row, an odd
  one two, both inside).

The encoder is never cut: its deepest levels see the whole face.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .sizes import IMG_SIZE

__all__ = ["ALIGN", "CUT_LEVELS", "ROW_CUT_INPUT", "RowCut", "cut_openvino_model", "row_cut"]

CUT_LEVELS = (12, 24, 48)
"""Heights of the decoder tensors that are cut (each after its skip connection is joined): the
inputs of the last three upsamplings, to 24, 48 and 96 rows."""


@dataclass(frozen=True)
class RowCut:
    """Where the decoder's tensors start for callers that read output rows ``rows_from`` on.

    ``starts``: the first row kept of the 12-, 24- and 48-row tensors (``CUT_LEVELS``), in that
    tensor's own rows; all 0 is the whole network."""

    rows_from: int
    starts: tuple[int, int, int]

    @property
    def first_row(self) -> int:
        """The first output row computed (<= ``rows_from``); rows ``first_row`` .. ``rows_from - 1``
        are computed from a cut tensor and are not the whole network's."""
        return 2 * self.starts[2]

    @property
    def offsets(self) -> tuple[int, int, int, int, int, int]:
        """The six slice starts in the order the decoder meets them: the 12-row tensor; the
        24-row skip connection, then the joined 24-row tensor; the same for 48; the 96-row skip.
        Each is counted from the first row of the tensor being cut (a cut tensor upsampled
        starts at twice its first row)."""
        s12, s24, s48 = self.starts
        return (s12, 2 * s12, s24 - 2 * s12, 2 * s24, s48 - 2 * s24, 2 * s48)


ALIGN = (1, 1, 16)
"""Each cut of the 12-, 24- and 48-row tensors starts on a multiple of this (rounded up the
face). A cut 48-row tensor starting elsewhere gave rows that differ from the whole network's in
the last bits (up to 2e-6 in float32, one step in bfloat16; torch and OpenVINO, batches of 1, 5
and 8): the convolutions' kernels block the rows differently. On multiples of 16 every row from
``rows_from`` is the whole network's bit for bit (tests/models), so a frame's face never depends
on which faces share its batch."""


def row_cut(rows_from: int, align: tuple[int, int, int] = ALIGN) -> RowCut:
    """The ``RowCut`` for a caller that reads output rows ``rows_from`` .. 95 (clamped to 0 .. 95;
    0: nothing is cut); ``align``: the cuts' multiples (``ALIGN``)."""
    rows_from = min(max(0, int(rows_from)), IMG_SIZE - 1)
    need = rows_from - 1  # the output block's 3x3 convolution
    starts = []
    for step in reversed(align):
        need -= 2  # the level's two residual 3x3 convolutions
        need = max(0, (need - 1) // 2) // step * step  # the upsampling's input rows
        starts.append(need)
    s48, s24, s12 = starts
    return RowCut(rows_from, (s12, s24, s48))


ROW_CUT_INPUT = "row_cut"
"""The name of the input ``cut_openvino_model`` adds: int64 (6,), ``RowCut.offsets``."""


def cut_openvino_model(model: Any) -> bool:
    """Let an OpenVINO model of Wav2Lip (float32 or NNCF's int8) cut its decoder: slices at
    ``RowCut.offsets`` after the joined 12-, 24- and 48-row tensors and on the 24-, 48- and
    96-row skip connections, started by a new input ``ROW_CUT_INPUT`` (all zeros: the whole
    network), so one compiled model serves every ``rows_from``; its output then has
    ``96 - first_row`` rows. Changes ``model`` in place; False (and unchanged) when its decoder
    is not laid out as Wav2Lip's (one channel-joining Concat per size 12, 24, 48 and 96)."""
    import openvino as ov
    import openvino.opset13 as ops

    joined: dict[int, Any] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Concat" or op.get_output_partial_shape(0).rank.get_length() != 4:
            continue
        height = op.get_output_partial_shape(0)[2]
        if height.is_static and height.get_length() in (*CUT_LEVELS, IMG_SIZE):
            if height.get_length() in joined or op.get_input_size() != 2 or op.get_axis() != 1:
                return False
            joined[height.get_length()] = op
    if len(joined) != len(CUT_LEVELS) + 1:
        return False
    offsets = ops.parameter([6], ov.Type.i64, name=ROW_CUT_INPUT)
    offsets.output(0).get_tensor().set_names({ROW_CUT_INPUT})
    to_end, step, rows = np.array([np.iinfo(np.int64).max]), np.array([1]), np.array([2])

    def rows_from(source: Any, k: int) -> Any:
        start = ops.slice(offsets, np.array([k]), np.array([k + 1]), step)
        return ops.slice(source, start, to_end, step, rows)

    def cut_skip(concat: Any, k: int) -> None:  # the encoder's tensor, joined second
        concat.input(1).replace_source_output(rows_from(concat.input(1).get_source_output(), k).output(0))

    def cut_after(concat: Any, k: int) -> None:
        users = list(concat.output(0).get_target_inputs())
        cut = rows_from(concat.output(0), k)
        for user in users:
            user.replace_source_output(cut.output(0))

    cut_after(joined[12], 0)
    cut_skip(joined[24], 1)
    cut_after(joined[24], 2)
    cut_skip(joined[48], 3)
    cut_after(joined[48], 4)
    cut_skip(joined[IMG_SIZE], 5)
    model.add_parameters([offsets])
    model.validate_nodes_and_infer_types()
    return True
