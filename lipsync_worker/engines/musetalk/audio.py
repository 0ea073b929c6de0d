"""MuseTalk's audio features: whisper-tiny's log-mel (written here, same parameters as
Whisper's feature extractor), the 5 encoder hidden states at 50 Hz, and the 10-step
window (50 tokens of 384) each 25 fps video frame reads."""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..wav2lip.audio import mel_filterbank

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
CHUNK_SAMPLES = 30 * SAMPLE_RATE  # Whisper's encoder takes exactly 30 s (3000 mel frames)
FEATURES_PER_SECOND = 50
PAD_LEFT, PAD_RIGHT = 4, 12  # 50 Hz steps of silence around the utterance
WINDOW = 10  # 50 Hz steps each video frame reads (0.2 s of audio)


@functools.cache
def _filters() -> np.ndarray:
    return mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS, 0.0, SAMPLE_RATE / 2).astype(np.float64)


def whisper_log_mel(wav: np.ndarray) -> np.ndarray:
    """(80, 3000) log-mel of one ≤30 s piece of 16 kHz audio, zero-padded to 30 s:
    power STFT (n_fft 400, hop 160, periodic Hann, centred, reflect), Slaney mel 0-8 kHz,
    log10 floored at 1e-10, the last frame dropped, clamped to max-8, then (x+4)/4."""
    wav = np.asarray(wav, np.float64)[:CHUNK_SAMPLES]
    wav = np.pad(wav, (0, CHUNK_SAMPLES - len(wav)))
    padded = np.pad(wav, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    log_spec = np.log10(np.maximum(_filters() @ power.T, 1e-10))[:, :-1]
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


@torch.inference_mode()
def whisper_hidden_states(encoder, wav: np.ndarray, device, dtype) -> torch.Tensor:
    """(T, 5, 384) on `device`: embeddings, layers 1-3 and the final layer-normed output,
    T = 50 per second of `wav` (30 s pieces through the encoder)."""
    length = int(len(wav) / SAMPLE_RATE * FEATURES_PER_SECOND)
    parts = []
    for start in range(0, max(1, len(wav)), CHUNK_SAMPLES):
        mel = torch.from_numpy(whisper_log_mel(wav[start : start + CHUNK_SAMPLES]))[None].to(device, dtype)
        states = encoder(mel, output_hidden_states=True).hidden_states
        parts.append(torch.stack(states, dim=2)[0])  # (1500, 5, 384)
    return torch.cat(parts, 0)[:length]


def feature_chunks(hidden_states, num_frames: int) -> torch.Tensor:
    """(T,5,384) → (num_frames, 50, 384): padded 4 steps before and 12 after, video
    frame f takes steps [2f, 2f+10), flattened time-major (step, then layer)."""
    states = torch.as_tensor(hidden_states)
    steps, layers, dim = states.shape
    needed = 2 * (num_frames - 1) + WINDOW
    right = max(PAD_RIGHT, needed - PAD_LEFT - steps)
    padded = torch.cat([states.new_zeros(PAD_LEFT, layers, dim), states, states.new_zeros(right, layers, dim)])
    index = 2 * torch.arange(num_frames, device=states.device)[:, None] + torch.arange(WINDOW, device=states.device)
    return padded[index].reshape(num_frames, WINDOW * layers, dim)
