"""The ASR engines of the catalogue (`contracts.engines.ASR_ENGINES`), each mapped to its
implementation. Only the worker hosting live sessions imports this; engines load their
packages (pocketsphinx, faster-whisper, httpx) when first used."""

from __future__ import annotations

from contracts.engines import ASR_ENGINES
from contracts.errors import InvalidInput

from .base import ASREngine, Transcriber
from .faster_whisper import FasterWhisperEngine
from .openai import OpenAITranscriptionEngine
from .pocketsphinx import PocketSphinxEngine

__all__ = ["ASREngine", "Transcriber", "asr_engine_get", "asr_engine_list", "asr_engine_names"]

_IMPLEMENTATIONS = {cls.name: cls for cls in (PocketSphinxEngine, FasterWhisperEngine, OpenAITranscriptionEngine)}
# One instance per engine and process: they hold the loaded models.
_REGISTRY: dict[str, ASREngine] = {entry.name: _IMPLEMENTATIONS[entry.name]() for entry in ASR_ENGINES}


def asr_engine_names() -> list[str]:
    return list(_REGISTRY)


def asr_engine_get(name: str) -> ASREngine:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidInput(
            f"Unknown ASR model '{name}'.", field="asr_model", extra={"valid_asr_models": asr_engine_names()}
        ) from None


def asr_engine_list() -> list[dict]:
    """The catalogue rows: id, display_name, licence, offline, available, reason, model."""
    return [engine.describe() for engine in _REGISTRY.values()]
