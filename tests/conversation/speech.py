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


def speech_span(pcm: np.ndarray, level: float = 0.01, sample_rate: int = ASR_SAMPLE_RATE) -> tuple[float, float]:
    """Where the voice really is in `pcm`: (first, last) second of the 10 ms frames whose RMS
    exceeds `level` (piper pads its sentences with near-silence)."""
    frame = sample_rate // 100
    frames = pcm[: len(pcm) // frame * frame].reshape(-1, frame)
    loud = np.flatnonzero(np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) > level)
    if not len(loud):
        raise ValueError("no speech in this audio")
    return loud[0] / 100, (loud[-1] + 1) / 100


def pieces(pcm: np.ndarray, ms: int = 20, sample_rate: int = ASR_SAMPLE_RATE):
    """`pcm` in the pieces a WebRTC microphone track delivers (20 ms by default)."""
    step = sample_rate * ms // 1000
    for start in range(0, len(pcm), step):
        yield pcm[start : start + step]
