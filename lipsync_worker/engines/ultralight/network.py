"""Ultralight-Digital-Human's U-Net (MobileNetV2-style blocks) with its audio branch,
written from the published layer list so that the per-avatar checkpoints load strictly,
in either of the two key layouts the releases use."""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..neural import CheckpointError, load_strict, load_tensor_file, strip_prefix, unwrap_state_dict


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, use_res_connect: bool, expand_ratio: int = 2):
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = use_res_connect
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, 1, 0, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class DoubleConvDW(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int = 1):
        super().__init__()
        self.double_conv = nn.Sequential(InvertedResidual(inp, oup, stride, False), InvertedResidual(oup, oup, 1, True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class InConvDw(nn.Module):
    def __init__(self, inp: int, oup: int):
        super().__init__()
        self.inconv = InvertedResidual(inp, oup, 1, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inconv(x)


class Down(nn.Module):
    def __init__(self, inp: int, oup: int):
        super().__init__()
        self.maxpool_conv = DoubleConvDW(inp, oup, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    def __init__(self, inp: int, oup: int):
        super().__init__()
        self.conv = DoubleConvDW(inp, oup, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        dy, dx = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
        if dy or dx:
            x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x, skip], dim=1))


class OutConv(nn.Module):
    def __init__(self, inp: int, oup: int):
        super().__init__()
        self.conv = nn.Conv2d(inp, oup, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _conv_bn(prefix_module: nn.Module, name: str, inp: int, oup: int, stride, padding: int) -> None:
    setattr(prefix_module, f"conv{name}", nn.Conv2d(inp, oup, 3, stride, padding, bias=True))
    setattr(prefix_module, f"bn{name}", nn.BatchNorm2d(oup))


class AudioConvHubert(nn.Module):
    """(B,16,32,32) HuBERT window → (B,512,10,10)."""

    def __init__(self):
        super().__init__()
        self.conv1 = InvertedResidual(16, 64, 1, False)
        self.conv2 = InvertedResidual(64, 128, 1, False)
        _conv_bn(self, "3", 128, 256, 2, 1)
        self.conv4 = InvertedResidual(256, 256, 1, True)
        _conv_bn(self, "5", 256, 512, 2, 3)  # padding 3 turns 16×16 into 10×10
        self.conv6 = InvertedResidual(512, 512, 1, True)
        self.conv7 = InvertedResidual(512, 512, 1, True)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(x))
        x = self.conv4(self.relu(self.bn3(self.conv3(x))))
        x = self.relu(self.bn5(self.conv5(x)))
        return self.conv7(self.conv6(x))


class AudioConvWenet(nn.Module):
    """(B,128,16,32) WeNet window → (B,512,10,10)."""

    def __init__(self):
        super().__init__()
        self.conv1 = InvertedResidual(128, 256, 1, False)
        self.conv2 = InvertedResidual(256, 256, 1, True)
        _conv_bn(self, "3", 256, 256, (1, 2), 1)
        self.conv4 = InvertedResidual(256, 256, 1, True)
        _conv_bn(self, "5", 256, 512, 2, 3)
        self.conv6 = InvertedResidual(512, 512, 1, True)
        self.conv7 = InvertedResidual(512, 512, 1, True)
        self.relu = nn.ReLU()

    forward = AudioConvHubert.forward


class Model(nn.Module):
    def __init__(self, n_channels: int = 6, mode: str = "hubert"):
        super().__init__()
        if mode not in ("hubert", "wenet"):
            raise ValueError(f"mode must be 'hubert' or 'wenet', not {mode!r}")
        self.n_channels = n_channels
        self.mode = mode
        self.inc = InConvDw(n_channels, 32)  # 160
        self.down1 = Down(32, 64)  # 80
        self.down2 = Down(64, 128)  # 40
        self.down3 = Down(128, 256)  # 20
        self.down4 = Down(256, 512)  # 10
        self.audio_model = AudioConvHubert() if mode == "hubert" else AudioConvWenet()
        self.fuse_conv = nn.Sequential(DoubleConvDW(1024, 512), DoubleConvDW(512, 256))
        self.up1 = Up(512, 128)
        self.up2 = Up(256, 64)
        self.up3 = Up(128, 32)
        self.up4 = Up(64, 32)
        self.outc = OutConv(32, 3)

    def forward(self, x: torch.Tensor, audio_feat: torch.Tensor) -> torch.Tensor:
        """x (B,6,160,160) reference+masked in 0..1, audio (B,16,32,32) → (B,3,160,160)."""
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        fused = self.fuse_conv(torch.cat([x5, self.audio_model(audio_feat)], dim=1))
        x = self.up1(fused, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return torch.sigmoid(self.outc(x))


# The first releases wrapped the input and down blocks in a one-item Sequential.
_OLD_LAYOUT = re.compile(r"^(inc\.inconv|down\d\.maxpool_conv)\.0\.")


def to_new_layout(state_dict: dict) -> dict:
    return {_OLD_LAYOUT.sub(r"\1.", k): v for k, v in state_dict.items()}


def load_state_dict_any(model: Model, state_dict: dict, path: str | Path = "") -> Model:
    """Strict load of either key layout (`inc.inconv.0.…` or `inc.inconv.…`)."""
    return load_strict(model, to_new_layout(strip_prefix(state_dict, "module.")), path)


def checkpoint_mode(state_dict: dict) -> str:
    """'hubert' or 'wenet', read off the audio branch's first layer."""
    weight = state_dict.get("audio_model.conv1.conv.0.weight")
    if weight is None:
        raise CheckpointError("not an Ultralight checkpoint: audio_model.conv1.conv.0.weight is missing.")
    return {16: "hubert", 128: "wenet"}.get(int(weight.shape[1]), "unknown")


def load_checkpoint(path: str | Path) -> dict:
    """The state_dict of a plain state_dict file, a training checkpoint
    `{"epoch", "model", "optimizer"}`, or a TorchScript archive."""
    return to_new_layout(strip_prefix(unwrap_state_dict(load_tensor_file(path), path), "module."))


def build_ultralight(path: str | Path) -> Model:
    state_dict = load_checkpoint(path)
    mode = checkpoint_mode(state_dict)
    if mode == "unknown":
        raise CheckpointError(f"{path}: the audio branch is neither the HuBERT nor the WeNet one.")
    return load_state_dict_any(Model(6, mode), state_dict, path).eval()
