"""Real speech for the conversation tests, made with piper (the default voice shipped in a
wheel): what a student says, as a microphone would hear it."""

from __future__ import annotations

import functools

import numpy as np
from scipy.signal import resample_poly

from contracts.conversation import ASR_SAMPLE_RATE


@functools.lru_cache(maxsize=32)
def _piper(text: str) -> tuple[np.ndarray, int]:
    from tts_worker.engines import get_engine

    chunks = list(get_engine("piper").synthesize(text))
    pcm = np.concatenate([c.pcm for c in chunks]).astype(np.float32) / 32768.0
    return pcm, chunks[0].sample_rate


def piper_speech(text: str, sample_rate: int = ASR_SAMPLE_RATE) -> np.ndarray:
    """`text` spoken by piper: mono float32 in [-1, 1] at `sample_rate`."""
    pcm, rate = _piper(text)
    if rate != sample_rate:
        g = np.gcd(rate, sample_rate)
        pcm = resample_poly(pcm, sample_rate // g, rate // g).astype(np.float32)
    return pcm.copy()


def silence(seconds: float, sample_rate: int = ASR_SAMPLE_RATE) -> np.ndarray:
    return np.zeros(int(seconds * sample_rate), dtype=np.float32)


def noise(seconds: float, level: float = 0.05, sample_rate: int = ASR_SAMPLE_RATE, seed: int = 7) -> np.ndarray:
    """Steady broadband noise (a fan, a hum): loud, but not speech."""
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal(int(seconds * sample_rate))).astype(np.float32)
