"""The one interface every ASR engine implements.

An engine hands out one `Transcriber` per utterance: the live session feeds it the
student's audio while they speak (16 kHz mono float32, from the VAD's "start" on) and asks
for the transcript when the VAD says they stopped, so `finish()` must be quick: streaming
engines decode during `accept()`.
"""

from __future__ import annotations

import importlib.util
from typing import ClassVar

import numpy as np
from django.conf import settings

from contracts.conversation import ASR_SAMPLE_RATE
from contracts.engines import ASREngineEntry, asr_engine
from contracts.errors import EngineUnavailable


class Transcriber:
    """One utterance; used from one thread, `finish()` called once."""

    def accept(self, pcm: np.ndarray) -> str | None:
        """Feed audio; the partial hypothesis when it changed, else None (always None for
        engines without partials)."""
        raise NotImplementedError

    def finish(self) -> str:
        """The final transcript, stripped (may be "")."""
        raise NotImplementedError


class ASREngine:
    """An engine of the catalogue (`contracts.engines.ASR_ENGINES`), which gives its display
    name, licence and whether it runs offline; subclasses say how it hears."""

    name: ClassVar[str] = ""

    @property
    def entry(self) -> ASREngineEntry:
        entry = asr_engine(self.name)
        if entry is None:
            raise LookupError(f"ASR engine '{self.name}' is not in contracts.engines.ASR_ENGINES.")
        return entry

    def availability(self) -> tuple[bool, str]:
        """(usable here, why not: naming the setting or path to fix). Cheap: it is called
        for every catalogue."""
        raise NotImplementedError

    def model(self) -> str:
        """The model it would use, for the catalogue ("" when none)."""
        return ""

    def transcriber(self, language: str = "en") -> Transcriber:
        """A transcriber for one utterance in `language`; EngineUnavailable with the reason
        when the engine cannot run here."""
        raise NotImplementedError

    def warm_up(self) -> None:
        """Load what the first utterance would otherwise wait for (engines with a model)."""

    def describe(self) -> dict:
        available, reason = self.availability()
        return {
            "id": self.name,
            "display_name": self.entry.display_name,
            "licence": self.entry.licence,
            "offline": self.entry.offline,
            "available": available,
            "reason": reason,
            "model": self.model(),
        }

    def _require_available(self) -> None:
        available, reason = self.availability()
        if not available:
            raise EngineUnavailable(f"{self.entry.display_name} is unavailable: {reason}", field="asr_model")


def package_installed(name: str) -> bool:
    """Whether a package can be imported, without importing it."""
    return importlib.util.find_spec(name) is not None


def max_samples() -> int:
    """The longest utterance a transcriber keeps (ASR_MAX_UTTERANCE_SECONDS), in samples."""
    return int(settings.ASR_MAX_UTTERANCE_SECONDS * ASR_SAMPLE_RATE)


def as_float32(pcm: np.ndarray) -> np.ndarray:
    return np.asarray(pcm, dtype=np.float32).reshape(-1)


def float_to_int16(pcm: np.ndarray) -> np.ndarray:
    return (np.clip(pcm, -1.0, 1.0) * 32767.0).astype(np.int16)


class BufferingTranscriber(Transcriber):
    """For engines that transcribe a whole utterance at once: keeps the audio (up to
    ASR_MAX_UTTERANCE_SECONDS; the rest is dropped) and transcribes it in `finish()`."""

    def __init__(self):
        self._chunks: list[np.ndarray] = []
        self._samples = 0
        self._limit = max_samples()

    def accept(self, pcm: np.ndarray) -> str | None:
        pcm = as_float32(pcm)[: max(0, self._limit - self._samples)]
        if len(pcm):
            self._chunks.append(pcm.copy())  # the caller may reuse its buffer
            self._samples += len(pcm)
        return None

    def audio(self) -> np.ndarray:
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.float32)
