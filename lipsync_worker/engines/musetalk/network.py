"""MuseTalk's networks, all library classes built from configs (nothing from the hub):
diffusers' UNet2DConditionModel and AutoencoderKL (sd-vae-ft-mse), transformers' Whisper
encoder (whisper-tiny), plus the sinusoidal positional encoding of the audio tokens."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ..neural import CheckpointError, load_strict, load_tensor_file, state_dict_mismatch, unwrap_state_dict

# The released musetalk.json (v1 and v1.5); an operator's file takes precedence.
UNET_CONFIG = dict(
    in_channels=8,
    out_channels=4,
    sample_size=64,
    block_out_channels=[320, 640, 1280, 1280],
    layers_per_block=2,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    cross_attention_dim=384,
    attention_head_dim=8,
    act_fn="silu",
    norm_num_groups=32,
    norm_eps=1e-5,
    flip_sin_to_cos=True,
    freq_shift=0,
    downsample_padding=1,
    center_input_sample=False,
    mid_block_scale_factor=1,
)
# sd-vae-ft-mse.
VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    sample_size=256,
    layers_per_block=2,
    block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    act_fn="silu",
    norm_num_groups=32,
    scaling_factor=0.18215,
)
# whisper-tiny's encoder.
WHISPER_CONFIG = dict(
    d_model=384,
    encoder_layers=4,
    encoder_attention_heads=6,
    encoder_ffn_dim=1536,
    decoder_layers=4,
    decoder_attention_heads=6,
    decoder_ffn_dim=1536,
    num_mel_bins=80,
    max_source_positions=1500,
    max_target_positions=448,
    vocab_size=51865,
)
VAE_SCALE = 0.18215


def _clean(config: dict) -> dict:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _empty_then_load(make, state_dict: dict | None, path):
    """Build on the meta device and adopt the file's tensors (no multi-second random init
    of ~1B parameters that the load would overwrite anyway); plain build otherwise."""
    if state_dict is None:
        return make()
    with torch.device("meta"):
        model = make()
    problem = state_dict_mismatch(model, state_dict)
    if problem:
        raise CheckpointError(f"{path}: does not fit the network: {problem}")
    model.load_state_dict(state_dict, strict=True, assign=True)
    if any(t.is_meta for t in list(model.parameters()) + list(model.buffers())):
        return load_strict(make(), state_dict, path)  # something outside the state_dict: build it for real
    return model


def build_unet(config: dict | None = None, state_dict: dict | None = None, path=""):
    from diffusers import UNet2DConditionModel

    # from_config ignores keys of other diffusers versions that the released json carries.
    values = dict(UNET_CONFIG, **_clean(config or {}))
    return _empty_then_load(lambda: UNet2DConditionModel.from_config(values), state_dict, path).eval()


def _rename_vae_attention(state_dict: dict) -> dict:
    """Old diffusers files name the mid-block attention query/key/value/proj_attn."""
    names = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}
    out = {}
    for key, value in state_dict.items():
        if ".attentions." in key:
            for old, new in names.items():
                key = key.replace(old, new)
            if value.ndim == 4 and key.endswith("weight") and value.shape[2:] == (1, 1):
                value = value[:, :, 0, 0]  # 1×1 conv projections as linear ones
        out[key] = value
    return out


def build_vae(config: dict | None = None, state_dict: dict | None = None, path=""):
    from diffusers import AutoencoderKL

    values = dict(VAE_CONFIG, **_clean(config or {}))
    sd = _rename_vae_attention(state_dict) if state_dict is not None else None
    return _empty_then_load(lambda: AutoencoderKL.from_config(values), sd, path).eval()


def build_whisper_encoder(config: dict | None = None, state_dict: dict | None = None, path=""):
    """transformers' WhisperEncoder (whisper-tiny unless `config` says otherwise)."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    values = dict(WHISPER_CONFIG, **_clean(config or {}))
    for key in ("architectures", "model_type", "transformers_version", "torch_dtype", "dtype"):
        values.pop(key, None)
    cfg = WhisperConfig(**values)
    if state_dict is not None:
        state_dict = whisper_encoder_state_dict(state_dict)
    return _empty_then_load(lambda: WhisperEncoder(cfg), state_dict, path).eval()


def whisper_encoder_state_dict(state_dict: dict) -> dict:
    """The encoder's tensors out of a WhisperForConditionalGeneration (`model.encoder.…`)
    or WhisperModel (`encoder.…`) file."""
    for prefix in ("model.encoder.", "encoder."):
        if any(k.startswith(prefix) for k in state_dict):
            return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    return state_dict


class PositionalEncoding(nn.Module):
    """Sinusoidal position codes added to the 50 audio tokens of a frame."""

    def __init__(self, d_model: int = 384, max_len: int = 5000):
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div)
        pe[:, 1::2] = torch.cos(position * div)
        # Not persistent: the released checkpoints carry no copy of it.
        self.register_buffer("pe", pe[None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


def load_checkpoint(path: str | Path) -> dict:
    """The UNet state_dict of `unet.pth` (v1.5) or `pytorch_model.bin` (v1): plain, no prefix."""
    from ..neural import strip_prefix

    return strip_prefix(unwrap_state_dict(load_tensor_file(path), path), "module.")
