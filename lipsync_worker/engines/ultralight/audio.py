"""HuBERT audio features for Ultralight: transformers' HubertModel built from a config
(never from the hub), run on the normalised 16 kHz waveform; 1024-d at 50 Hz, grouped
in pairs per 25 fps video frame, and the 8-frame window each video frame reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..neural import load_strict, load_tensor_file, unwrap_state_dict

# hubert-large-ls960-ft, what the Ultralight avatars are trained with.
HUBERT_LARGE = dict(
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    intermediate_size=4096,
    feat_extract_norm="layer",
    feat_extract_activation="gelu",
    conv_bias=True,
    do_stable_layer_norm=True,
    conv_dim=[512] * 7,
    conv_stride=[5, 2, 2, 2, 2, 2, 2],
    conv_kernel=[10, 3, 3, 3, 3, 2, 2],
    num_conv_pos_embeddings=128,
    num_conv_pos_embedding_groups=16,
    layer_norm_eps=1e-5,
    vocab_size=32,
)
WINDOW = 8  # video frames of audio context per generated frame
FEATURE_DIM = 1024


def build_hubert(config: dict | None = None):
    from transformers import HubertConfig, HubertModel

    values = {k: v for k, v in (config or HUBERT_LARGE).items() if not k.startswith("_")}
    model = HubertModel(HubertConfig(**values))
    return model.eval()


def _rename_weight_norm(state_dict: dict, expected: set[str]) -> dict:
    """The released files store the positional conv's weight norm as weight_g/weight_v;
    newer transformers hold it as a parametrization (original0/original1)."""
    names = {
        ".weight_g": ".parametrizations.weight.original0",
        ".weight_v": ".parametrizations.weight.original1",
    }
    out = {}
    for key, value in state_dict.items():
        for old, new in names.items():
            if key.endswith(old) and key not in expected and key[: -len(old)] + new in expected:
                key = key[: -len(old)] + new
            elif key.endswith(new) and key not in expected and key[: -len(new)] + old in expected:
                key = key[: -len(new)] + old
        out[key] = value
    return out


def hubert_state_dict(path: str | Path, model) -> dict:
    """The HubertModel part of a released file (HubertForCTC keys are `hubert.…`, plus a
    CTC head we do not use)."""
    state_dict = unwrap_state_dict(load_tensor_file(path), path)
    if any(k.startswith("hubert.") for k in state_dict):
        state_dict = {k[len("hubert.") :]: v for k, v in state_dict.items() if k.startswith("hubert.")}
    return _rename_weight_norm(state_dict, set(model.state_dict()))


def load_hubert(folder: Path, weights: Path):
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else None
    model = build_hubert(config)
    return load_strict(model, hubert_state_dict(weights, model), weights)


def normalise(wav: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance: the feature extractor setting HuBERT-large was trained with."""
    wav = np.asarray(wav, np.float32)
    return (wav - wav.mean()) / np.sqrt(wav.var() + 1e-7)


@torch.inference_mode()
def hubert_features(model, wav: np.ndarray, device, dtype, chunk_seconds: float = 20.0) -> np.ndarray:
    """(T, 1024) last hidden state at 50 Hz. Long audio goes in chunks (attention memory
    grows with the square of the length)."""
    wav = normalise(wav)
    if len(wav) < 400:  # the conv stack's receptive field
        wav = np.pad(wav, (0, 400 - len(wav)))
    step = int(chunk_seconds * 16000)
    parts = []
    for start in range(0, len(wav), step):
        piece = wav[start : start + step]
        if len(piece) < 400:
            piece = np.pad(piece, (0, 400 - len(piece)))
        x = torch.from_numpy(piece)[None].to(device, dtype)
        parts.append(model(x).last_hidden_state[0].float().cpu().numpy())
    return np.concatenate(parts, 0)


def feature_windows(features: np.ndarray, num_frames: int) -> np.ndarray:
    """(num_frames, 16, 32, 32): video frame i reads frames [i-4, i+4) of the features
    grouped two per frame, zeros beyond the ends."""
    pairs = np.zeros((num_frames, 2, FEATURE_DIM), np.float32)
    usable = min(len(features) // 2, num_frames)
    pairs[:usable] = features[: 2 * usable].reshape(usable, 2, FEATURE_DIM)
    if len(features) % 2 and usable < num_frames:
        pairs[usable, 0] = features[2 * usable]
    half = WINDOW // 2
    padded = np.concatenate(
        [np.zeros((half, 2, FEATURE_DIM), np.float32), pairs, np.zeros((half, 2, FEATURE_DIM), np.float32)]
    )
    windows = np.lib.stride_tricks.sliding_window_view(padded, WINDOW, axis=0)[:num_frames]  # (n,2,1024,8)
    return np.ascontiguousarray(windows.transpose(0, 3, 1, 2)).reshape(num_frames, 16, 32, 32)
