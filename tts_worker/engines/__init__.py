"""The TTS engines of the catalogue (`contracts.engines`), each mapped to its implementation."""

from __future__ import annotations

from contracts.engines import TTS_ENGINES
from contracts.errors import InvalidInput

from .base import AudioChunk, Timing, TTSEngine, Voice, VoiceReference
from .cosyvoice import CosyVoiceEngine
from .edge import EdgeTTSEngine
from .espeak import EspeakEngine
from .piper import PiperEngine
from .sovits import SoVITSEngine
from .tacotron import TacotronEngine

__all__ = [
    "AudioChunk",
    "Timing",
    "TTSEngine",
    "Voice",
    "VoiceReference",
    "engine_list",
    "engine_names",
    "get_engine",
    "register",
]

_REGISTRY: dict[str, TTSEngine] = {}


def register(engine: TTSEngine) -> TTSEngine:
    _REGISTRY[engine.name] = engine
    return engine


_IMPLEMENTATIONS = {
    cls.name: cls for cls in (PiperEngine, EspeakEngine, EdgeTTSEngine, CosyVoiceEngine, SoVITSEngine, TacotronEngine)
}
for _entry in TTS_ENGINES:
    register(_IMPLEMENTATIONS[_entry.name]())


def engine_names() -> list[str]:
    return list(_REGISTRY)


def engine_list() -> list[TTSEngine]:
    return list(_REGISTRY.values())


def get_engine(name: str) -> TTSEngine:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidInput(
            f"Unknown TTS model '{name}'.", field="tts_model", extra={"valid_tts_models": engine_names()}
        ) from None
