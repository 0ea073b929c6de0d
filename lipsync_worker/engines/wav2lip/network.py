"""The official Wav2Lip generator (96×96), written from the published layer list so that
the released `wav2lip.pth` loads with strict=True (352 keys, 36,298,035 parameters)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..neural import load_strict, load_tensor_file, strip_prefix, unwrap_state_dict


class Conv2d(nn.Module):
    """Conv + BatchNorm + ReLU; with `residual` the input is added before the ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding, residual: bool = False):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class Conv2dTranspose(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size, stride, padding, output_padding=0):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding), nn.BatchNorm2d(cout)
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


def _res(c: int) -> Conv2d:
    return Conv2d(c, c, 3, 1, 1, residual=True)


def _down(cin: int, cout: int, residuals: int) -> nn.Sequential:
    return nn.Sequential(Conv2d(cin, cout, 3, 2, 1), *(_res(cout) for _ in range(residuals)))


def _up(cin: int, cout: int, residuals: int) -> nn.Sequential:
    return nn.Sequential(Conv2dTranspose(cin, cout, 3, 2, 1, 1), *(_res(cout) for _ in range(residuals)))


class Wav2Lip(nn.Module):
    def __init__(self):
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(Conv2d(6, 16, 7, 1, 3)),  # 96
                _down(16, 32, 2),  # 48
                _down(32, 64, 3),  # 24
                _down(64, 128, 2),  # 12
                _down(128, 256, 2),  # 6
                _down(256, 512, 1),  # 3
                nn.Sequential(Conv2d(512, 512, 3, 1, 0), Conv2d(512, 512, 1, 1, 0)),  # 1
            ]
        )
        self.audio_encoder = nn.Sequential(
            Conv2d(1, 32, 3, 1, 1),
            _res(32),
            _res(32),
            Conv2d(32, 64, 3, (3, 1), 1),
            _res(64),
            _res(64),
            Conv2d(64, 128, 3, 3, 1),
            _res(128),
            _res(128),
            Conv2d(128, 256, 3, (3, 2), 1),
            _res(256),
            Conv2d(256, 512, 3, 1, 0),
            Conv2d(512, 512, 1, 1, 0),
        )
        self.face_decoder_blocks = nn.ModuleList(
            [
                nn.Sequential(Conv2d(512, 512, 1, 1, 0)),  # 1
                nn.Sequential(Conv2dTranspose(1024, 512, 3, 1, 0), _res(512)),  # 3
                _up(1024, 512, 2),  # 6
                _up(768, 384, 2),  # 12
                _up(512, 256, 2),  # 24
                _up(320, 128, 2),  # 48
                _up(160, 64, 2),  # 96
            ]
        )
        self.output_block = nn.Sequential(Conv2d(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid())

    def forward(self, audio: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        """audio (B,1,80,16) mel window, face (B,6,96,96) masked+reference in 0..1 →
        (B,3,96,96) in 0..1."""
        x = self.audio_encoder(audio)
        feats = []
        f = face
        for block in self.face_encoder_blocks:
            f = block(f)
            feats.append(f)
        for block in self.face_decoder_blocks:
            # The U-Net skips: each decoder output meets the encoder output of its size.
            x = torch.cat((block(x), feats.pop()), dim=1)
        return self.output_block(x)


def load_checkpoint(path: str | Path) -> dict:
    """The generator's state_dict from a released file: the training checkpoint
    (`{"state_dict", "optimizer", ...}`, keys maybe prefixed `module.`), a bare
    state_dict, or a TorchScript archive."""
    return strip_prefix(unwrap_state_dict(load_tensor_file(path), path), "module.")


def build_wav2lip(path: str | Path | None = None) -> Wav2Lip:
    model = Wav2Lip()
    if path is not None:
        load_strict(model, load_checkpoint(path), path)
    return model.eval()
