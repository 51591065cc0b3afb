"""The Wav2Lip generator network (96×96), written to match the published checkpoints.

Parameter names and shapes are exactly those of ``wav2lip.pth`` / ``wav2lip_gan.pth`` (352
state-dict entries, 36,298,035 parameters), so the authors' weights load with ``strict=True``.
The layer layout is described in ``shared/fixtures/wav2lip_reference/ARCHITECTURE.md``.

Inputs: ``mel`` (B, 1, 80, 16) and ``faces`` (B, 6, 96, 96) — the lower-half-masked face and
the reference face, BGR, in [0, 1]. Output: (B, 3, 96, 96) sigmoid, BGR.
"""

from __future__ import annotations

import torch
from torch import nn

from .rows import CUT_LEVELS, row_cut
from .sizes import IMG_SIZE, MEL_STEP, NUM_MELS

__all__ = ["IMG_SIZE", "MEL_STEP", "NUM_MELS", "Wav2Lip"]

_Size = int | tuple[int, int]


class _Conv(nn.Module):
    """Conv2d + BatchNorm2d, then ReLU; when residual, the input is added before the ReLU."""

    def __init__(self, cin: int, cout: int, k: int, s: _Size = 1, p: int = 1, residual: bool = False):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, k, s, p), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class _ConvT(nn.Module):
    """ConvTranspose2d + BatchNorm2d, then ReLU."""

    def __init__(self, cin: int, cout: int, k: int, s: int, p: int, output_padding: int = 0):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, k, s, p, output_padding), nn.BatchNorm2d(cout)
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


def _res(c: int, n: int) -> list[nn.Module]:
    return [_Conv(c, c, 3, 1, 1, residual=True) for _ in range(n)]


def _face_encoder() -> nn.ModuleList:
    return nn.ModuleList(
        [
            nn.Sequential(_Conv(6, 16, 7, 1, 3)),  # 96
            nn.Sequential(_Conv(16, 32, 3, 2, 1), *_res(32, 2)),  # 48
            nn.Sequential(_Conv(32, 64, 3, 2, 1), *_res(64, 3)),  # 24
            nn.Sequential(_Conv(64, 128, 3, 2, 1), *_res(128, 2)),  # 12
            nn.Sequential(_Conv(128, 256, 3, 2, 1), *_res(256, 2)),  # 6
            nn.Sequential(_Conv(256, 512, 3, 2, 1), *_res(512, 1)),  # 3
            nn.Sequential(_Conv(512, 512, 3, 1, 0), _Conv(512, 512, 1, 1, 0)),  # 1
        ]
    )


def _audio_encoder() -> nn.Sequential:
    return nn.Sequential(
        _Conv(1, 32, 3, 1, 1),
        *_res(32, 2),
        _Conv(32, 64, 3, (3, 1), 1),
        *_res(64, 2),
        _Conv(64, 128, 3, 3, 1),
        *_res(128, 2),
        _Conv(128, 256, 3, (3, 2), 1),
        *_res(256, 1),
        _Conv(256, 512, 3, 1, 0),
        _Conv(512, 512, 1, 1, 0),
    )


def _face_decoder() -> nn.ModuleList:
    return nn.ModuleList(
        [
            nn.Sequential(_Conv(512, 512, 1, 1, 0)),
            nn.Sequential(_ConvT(1024, 512, 3, 1, 0), *_res(512, 1)),  # 3
            nn.Sequential(_ConvT(1024, 512, 3, 2, 1, 1), *_res(512, 2)),  # 6
            nn.Sequential(_ConvT(768, 384, 3, 2, 1, 1), *_res(384, 2)),  # 12
            nn.Sequential(_ConvT(512, 256, 3, 2, 1, 1), *_res(256, 2)),  # 24
            nn.Sequential(_ConvT(320, 128, 3, 2, 1, 1), *_res(128, 2)),  # 48
            nn.Sequential(_ConvT(160, 64, 3, 2, 1, 1), *_res(64, 2)),  # 96
        ]
    )


class Wav2Lip(nn.Module):
    """The Wav2Lip generator. ``forward(mel, faces)`` → BGR faces in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = _face_encoder()
        self.audio_encoder = _audio_encoder()
        self.face_decoder_blocks = _face_decoder()
        self.output_block = nn.Sequential(
            _Conv(80, 32, 3, 1, 1), nn.Conv2d(32, 3, kernel_size=1, stride=1, padding=0), nn.Sigmoid()
        )

    def forward(self, mel: torch.Tensor, faces: torch.Tensor, rows_from: int = 0) -> torch.Tensor:
        """(B, 3, 96, 96) BGR faces in [0, 1] for ``mel`` (B, 1, 80, 16) and ``faces`` (B, 6, 96, 96).

        ``rows_from`` > 0: only what output rows ``rows_from`` .. 95 need is computed (the
        decoder's last levels are cut, ``rows.row_cut``): returns rows ``first_row`` .. 95
        (B, 3, 96 - first_row, 96), of which those from ``rows_from`` are the whole network's
        bit for bit and the ones above are not."""
        x = self.audio_encoder(mel)  # (B, 512, 1, 1)
        skips = []
        y = faces
        for block in self.face_encoder_blocks:
            y = block(y)
            skips.append(y)
        cut = dict(zip(CUT_LEVELS, row_cut(rows_from).starts)) if rows_from > 0 else {}
        offset = 0  # the first row of x in the whole decoder's tensor of its size
        for block in self.face_decoder_blocks:
            x = block(x)
            skip = skips.pop()
            x = torch.cat((x, skip[:, :, offset:] if offset else skip), dim=1)
            start = cut.get(skip.shape[2])
            if start is not None:
                x = x[:, :, start - offset :]
                offset = 2 * start  # the upsampling doubles the rows
        return self.output_block(x)
