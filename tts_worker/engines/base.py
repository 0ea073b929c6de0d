"""The one interface every TTS engine implements.

An engine turns normalised text into a stream of `AudioChunk`s, one per sentence, so the
caller can play (and lip-sync) the first sentence while the next is being synthesised.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from contracts.engines import TTSEngineEntry, tts_engine
from contracts.errors import InvalidInput
from contracts.speech import AudioChunk, Timing

from .. import text as text_utils

SILENCE = "_"  # Label of pauses in phoneme timings (sentence edges, word gaps, punctuation).


@dataclass(frozen=True)
class Voice:
    id: str
    name: str
    language: str = ""
    gender: str | None = None  # "female" / "male" where the engine says so

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "language": self.language, "gender": self.gender}


@dataclass(frozen=True)
class VoiceReference:
    """A voice to clone: a local audio file (see `voice_reference_prepare`) and what it says."""

    path: str
    text: str = ""


class TTSEngine:
    """An engine of the catalogue (`contracts.engines.TTS_ENGINES`), which gives its
    display name and whether it clones voices; subclasses say how it speaks."""

    name: ClassVar[str] = ""
    # True when audio comes sentence by sentence (every engine here splits text itself).
    streaming: ClassVar[bool] = True
    timings: ClassVar[str | None] = None  # "phoneme", "word" or None

    @property
    def display_name(self) -> str:
        return self._entry.display_name

    @property
    def supports_clone(self) -> bool:
        return self._entry.supports_clone

    @property
    def _entry(self) -> TTSEngineEntry:
        entry = tts_engine(self.name)
        if entry is None:
            raise LookupError(f"TTS engine '{self.name}' is not in contracts.engines.TTS_ENGINES.")
        return entry

    def availability(self) -> tuple[bool, str]:
        """(usable here, why not). Must be cheap: it is called for every model list."""
        raise NotImplementedError

    def voices(self) -> list[Voice]:
        raise NotImplementedError

    def default_voice(self) -> str:
        voices = self.voices()
        return voices[0].id if voices else ""

    def synthesize(
        self, text: str, voice: str | None = None, reference: VoiceReference | None = None
    ) -> Iterator[AudioChunk]:
        """Chunks of speech, one per sentence of `text` in order (a long first sentence
        comes in two: its first clause, then the rest)."""
        voice_id = self.resolve_voice(voice)
        if reference is not None and not self.supports_clone:
            raise InvalidInput(f"{self.display_name} cannot clone a voice.", field="tts_model")
        for sentence in text_utils.split_for_streaming(text_utils.normalize(text)):
            chunk = self.synthesize_sentence(sentence, voice_id, reference)
            if chunk is not None and len(chunk.pcm):
                yield chunk

    def synthesize_sentence(self, sentence: str, voice: str, reference: VoiceReference | None) -> AudioChunk | None:
        raise NotImplementedError

    def resolve_voice(self, voice: str | None) -> str:
        """The voice id to use; an unknown one is a 400 listing the valid ones."""
        if not voice:
            return self.default_voice()
        ids = [v.id for v in self.voices()]
        if voice not in ids:
            raise InvalidInput(
                f"Unknown voice '{voice}' for {self.display_name}.",
                field="voice",
                extra={"valid_voices": ids},
            )
        return voice

    def describe(self) -> dict:
        available, reason = self.availability()
        return {
            "id": self.name,
            "display_name": self.display_name,
            "available": available,
            "reason": reason,
            "voices": [v.as_dict() for v in self.voices()],
            "supports_clone": self.supports_clone,
            "streaming": self.streaming,
            "timings": self.timings,
        }


def float_to_int16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)


def fill_gaps(timings: list[Timing], duration_ms: float) -> list[Timing]:
    """Make timings tile [0, duration] exactly: gaps and edges become silence, and
    neighbouring silences merge."""
    out: list[Timing] = []

    def add(label: str, start: float, end: float) -> None:
        if end <= start:
            return
        if out and label == SILENCE and out[-1].label == SILENCE:
            out[-1] = out[-1]._replace(end_ms=end)
        else:
            out.append(Timing(label, start, end))

    cursor = 0.0
    for t in sorted(timings, key=lambda t: t.start_ms):
        start, end = max(t.start_ms, cursor), min(t.end_ms, duration_ms)
        if start - cursor > 0.5:
            add(SILENCE, cursor, start)
        else:
            start = cursor  # close sub-millisecond gaps
        if end > start:
            add(t.label, start, end)
            cursor = end
    if duration_ms - cursor > 0.5 or not out:
        add(SILENCE, cursor, duration_ms)
    else:
        out[-1] = out[-1]._replace(end_ms=duration_ms)
    return out
