"""Wav2Lip's mel spectrogram with the reference hyper-parameters, in numpy (no librosa)."""

from __future__ import annotations

import functools

import numpy as np
from scipy.signal import lfilter

SAMPLE_RATE = 16000
N_FFT = 800
HOP = 200
WIN = 800
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
PREEMPHASIS = 0.97
REF_LEVEL_DB = 20.0
MIN_LEVEL_DB = -100.0
MAX_ABS = 4.0
MEL_STEP = 16  # mel columns per frame window
MEL_PER_FRAME = 80.0 / 25.0  # 80 mel columns a second, 25 video frames a second


def hz_to_mel_slaney(hz):
    """Slaney's scale: linear to 1 kHz (200/3 Hz a mel), logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, hz / f_sp)


def mel_to_hz_slaney(mel):
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular filters on the Slaney scale with Slaney (area) normalisation,
    (n_mels, n_fft//2+1) — what librosa.filters.mel gives with its defaults."""
    fft_hz = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = mel_to_hz_slaney(np.linspace(hz_to_mel_slaney(fmin), hz_to_mel_slaney(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


@functools.cache
def _basis() -> np.ndarray:
    return mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS, FMIN, FMAX)


def stft_magnitude(wav: np.ndarray, n_fft: int, hop: int, win: int) -> np.ndarray:
    """|STFT|, centred frames with reflect padding and a periodic Hann window, (bins, T)."""
    pad = n_fft // 2
    if len(wav) <= pad:
        wav = np.pad(wav, (0, pad + 1 - len(wav)))
    padded = np.pad(wav, pad, mode="reflect")
    frames = 1 + (len(padded) - n_fft) // hop
    strided = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:frames]
    window = np.zeros(n_fft)
    offset = (n_fft - win) // 2
    window[offset : offset + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    return np.abs(np.fft.rfft(strided * window, axis=1)).T


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """(80, T) normalised log-mel of 16 kHz float audio; T = 1 + len(wav) // 200."""
    wav = np.asarray(wav, dtype=np.float64)
    emphasised = lfilter([1.0, -PREEMPHASIS], [1.0], wav)
    mel = _basis().astype(np.float64) @ stft_magnitude(emphasised, N_FFT, HOP, WIN)
    db = 20.0 * np.log10(np.maximum(1e-5, mel)) - REF_LEVEL_DB
    return np.clip(2 * MAX_ABS * ((db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS, -MAX_ABS, MAX_ABS).astype(np.float32)


def mel_chunks(mel: np.ndarray, num_frames: int) -> np.ndarray:
    """(num_frames, 80, 16): frame i reads columns [int(3.2 i), +16); windows that would
    run past the end take the last 16 columns, as the reference does."""
    if mel.shape[1] < MEL_STEP:
        mel = np.pad(mel, ((0, 0), (0, MEL_STEP - mel.shape[1])), constant_values=-MAX_ABS)
    total = mel.shape[1]
    out = np.empty((num_frames, mel.shape[0], MEL_STEP), np.float32)
    for i in range(num_frames):
        start = min(int(i * MEL_PER_FRAME), total - MEL_STEP)
        out[i] = mel[:, start : start + MEL_STEP]
    return out
