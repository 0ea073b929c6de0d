"""The TTS engines, registered by name (the names `Avatar.tts_model` stores)."""
from __future__ import annotations

from tutor_site.exceptions import InvalidInput

from .base import AudioChunk, Timing, TTSEngine, Voice, VoiceReference
from .cosyvoice import CosyVoiceEngine
from .edge import EdgeTTSEngine
from .espeak import EspeakEngine
from .piper import PiperEngine
from .sovits import SoVITSEngine
from .tacotron import TacotronEngine

__all__ = [
    "AudioChunk", "Timing", "TTSEngine", "Voice", "VoiceReference",
    "engine_list", "engine_names", "get_engine", "register",
]

_REGISTRY: dict[str, TTSEngine] = {}


def register(engine: TTSEngine) -> TTSEngine:
    _REGISTRY[engine.name] = engine
    return engine


for _engine_class in (PiperEngine, EspeakEngine, EdgeTTSEngine, CosyVoiceEngine, SoVITSEngine, TacotronEngine):
    register(_engine_class())


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
