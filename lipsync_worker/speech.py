"""Speech for lip-sync: TTS chunks or an audio file turned into one 16 kHz AudioSegment."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.signal import resample_poly

from .engines.base import SAMPLE_RATE, AudioSegment, Timing


def _to_16k(pcm: np.ndarray, rate: int) -> np.ndarray:
    audio = pcm.astype(np.float32)
    if pcm.dtype == np.int16:
        audio /= 32768.0
    if rate != SAMPLE_RATE:
        audio = resample_poly(audio, SAMPLE_RATE, rate).astype(np.float32)
    return audio


def segment_from_tts_chunk(chunk) -> AudioSegment:
    """One TTS chunk (a sentence) as a segment, with its phoneme (or word) timings."""
    samples = _to_16k(chunk.pcm, chunk.sample_rate)
    kind = "phoneme" if _looks_phonemic(chunk) else "word"
    timings = [Timing(kind, t.label, float(t.start_ms), float(t.end_ms)) for t in chunk.timings]
    return AudioSegment(samples=samples, timings=timings)


def _looks_phonemic(chunk) -> bool:
    # Word timings carry whole words; phonemes are one or two symbols.
    labels = [t.label for t in chunk.timings]
    return bool(labels) and np.mean([len(label) for label in labels]) <= 3


def segment_join(segments: Iterable[AudioSegment]) -> AudioSegment:
    """Sentences one after the other, their timings shifted to the joined clock."""
    samples, timings, offset_ms = [], [], 0.0
    for segment in segments:
        samples.append(segment.samples)
        timings.extend(Timing(t.kind, t.text, t.start_ms + offset_ms, t.end_ms + offset_ms) for t in segment.timings)
        offset_ms += 1000.0 * len(segment.samples) / SAMPLE_RATE
    joined = np.concatenate(samples) if samples else np.zeros(0, np.float32)
    return AudioSegment(samples=joined, timings=timings)


def segment_from_file(path: str) -> AudioSegment:
    from django.conf import settings

    from tts_worker.audio import decode_audio

    pcm, rate = decode_audio(path, SAMPLE_RATE, max_seconds=settings.RENDER_MAX_SECONDS)
    return AudioSegment(samples=_to_16k(pcm, rate))
