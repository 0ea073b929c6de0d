"""Speech as it travels from the tts worker to whoever speaks it: audio chunks with their
phoneme and word timings (one chunk per sentence)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


class Timing(NamedTuple):
    """One phoneme (IPA) or word and where it sits in its chunk's audio."""

    label: str
    start_ms: float
    end_ms: float


@dataclass
class AudioChunk:
    pcm: np.ndarray  # int16, mono
    sample_rate: int
    text: str  # the sentence this audio speaks
    # Phonemes or words (see the engine's `timings`), covering the audio from 0 to its end.
    timings: list[Timing] = field(default_factory=list)
    # Word timings as well, when the engine gives both (espeak-ng).
    words: list[Timing] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return 1000.0 * len(self.pcm) / self.sample_rate
