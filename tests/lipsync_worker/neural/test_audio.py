"""Audio features against values computed here independently (scipy / explicit loops
from the published formulas, and transformers' own Whisper feature extractor)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import get_window, lfilter

from .conftest import speech


def _slaney_mel(hz: float) -> float:
    # Piecewise by hand: 3 mels per 200 Hz below 1 kHz, log steps of ln(6.4)/27 above.
    return hz * 3 / 200 if hz < 1000 else 15 + np.log(hz / 1000) * 27 / np.log(6.4)


def _slaney_hz(mel: float) -> float:
    return mel * 200 / 3 if mel < 15 else 1000 * np.exp((mel - 15) * np.log(6.4) / 27)


def _filterbank_by_loops(sr, n_fft, n_mels, fmin, fmax) -> np.ndarray:
    edges = [_slaney_hz(m) for m in np.linspace(_slaney_mel(fmin), _slaney_mel(fmax), n_mels + 2)]
    bins = np.arange(n_fft // 2 + 1) * sr / n_fft
    fb = np.zeros((n_mels, len(bins)))
    for m in range(n_mels):
        lo, centre, hi = edges[m], edges[m + 1], edges[m + 2]
        for j, f in enumerate(bins):
            if lo < f < hi:
                fb[m, j] = (f - lo) / (centre - lo) if f <= centre else (hi - f) / (hi - centre)
        fb[m] *= 2.0 / (hi - lo)  # Slaney: equal area
    return fb


def test_slaney_filterbank():
    from lipsync_worker.engines.wav2lip.audio import hz_to_mel_slaney, mel_filterbank

    assert float(hz_to_mel_slaney(1000.0)) == pytest.approx(15.0)
    ours = mel_filterbank(16000, 800, 80, 55, 7600)
    assert np.allclose(ours, _filterbank_by_loops(16000, 800, 80, 55, 7600), atol=1e-7)


def test_wav2lip_melspectrogram_matches_the_formula():
    from lipsync_worker.engines.wav2lip.audio import melspectrogram

    wav = speech(0.77).samples.astype(np.float64)
    emphasised = lfilter([1, -0.97], [1], wav)
    padded = np.pad(emphasised, 400, mode="reflect")
    window = get_window("hann", 800, fftbins=True)
    columns = []
    for start in range(0, len(padded) - 800 + 1, 200):
        columns.append(np.abs(np.fft.rfft(padded[start : start + 800] * window)))
    mel = _filterbank_by_loops(16000, 800, 80, 55, 7600) @ np.array(columns).T
    db = 20 * np.log10(np.maximum(1e-5, mel)) - 20
    expected = np.clip(8 * ((db + 100) / 100) - 4, -4, 4)

    ours = melspectrogram(wav.astype(np.float32))
    assert ours.shape == (80, 1 + len(wav) // 200) == expected.shape
    assert np.abs(ours - expected).max() < 1e-3


def test_wav2lip_mel_chunks_follow_the_reference_indexing():
    from lipsync_worker.engines.wav2lip.audio import mel_chunks

    mel = np.arange(80 * 70, dtype=np.float32).reshape(80, 70)
    chunks = mel_chunks(mel, 22)
    assert chunks.shape == (22, 80, 16)
    assert np.array_equal(chunks[5], mel[:, 16:32])  # int(3.2*5) = 16
    assert np.array_equal(chunks[17], mel[:, 54:70])  # int(3.2*17) = 54, last full window
    assert np.array_equal(chunks[21], mel[:, -16:])  # past the end: the final 16 columns


def test_whisper_log_mel_matches_transformers_feature_extractor():
    from transformers import WhisperFeatureExtractor

    from lipsync_worker.engines.musetalk.audio import whisper_log_mel

    wav = speech(3.3, seed=1).samples
    extractor = WhisperFeatureExtractor(
        feature_size=80, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400
    )
    expected = extractor(wav, sampling_rate=16000, return_tensors="np").input_features[0]
    ours = whisper_log_mel(wav)
    assert ours.shape == expected.shape == (80, 3000)
    assert np.abs(ours - expected).max() < 1e-4


def test_musetalk_feature_chunks_windows():
    from lipsync_worker.engines.musetalk.audio import feature_chunks

    steps = 50  # one second at 50 Hz → 25 video frames
    states = torch.arange(steps * 5 * 384, dtype=torch.float32).reshape(steps, 5, 384)
    chunks = feature_chunks(states, 25)
    assert chunks.shape == (25, 50, 384)
    padded = torch.cat([torch.zeros(4, 5, 384), states, torch.zeros(12, 5, 384)])
    for frame in (0, 7, 24):
        for token in (0, 13, 49):
            step, layer = divmod(token, 5)  # time-major: 5 layers per step
            assert torch.equal(chunks[frame, token], padded[2 * frame + step, layer])
    assert torch.count_nonzero(chunks[0, :20]) == 0  # the first frame sees 4 steps of silence


def test_musetalk_positional_encoding():
    from lipsync_worker.engines.musetalk.network import PositionalEncoding

    pe = PositionalEncoding(d_model=384)
    out = pe(torch.zeros(2, 50, 384))
    pos, i = 7, 10
    assert out[1, pos, 2 * i].item() == pytest.approx(np.sin(pos / 10000 ** (2 * i / 384)), abs=1e-5)
    assert out[1, pos, 2 * i + 1].item() == pytest.approx(np.cos(pos / 10000 ** (2 * i / 384)), abs=1e-5)
    assert not pe.state_dict()  # not part of any checkpoint


def test_ultralight_feature_windows():
    from lipsync_worker.engines.ultralight.audio import feature_windows

    features = np.random.default_rng(0).standard_normal((40, 1024)).astype(np.float32)  # 0.8 s at 50 Hz
    windows = feature_windows(features, 20)
    assert windows.shape == (20, 16, 32, 32)
    pairs = features.reshape(20, 2, 1024)
    flat = windows.reshape(20, 8, 2, 1024)
    assert np.array_equal(flat[10], pairs[6:14])  # frames i-4 .. i+3
    assert np.count_nonzero(flat[0, :4]) == 0 and np.array_equal(flat[0, 4:], pairs[0:4])
