"""Reads about TTS engines: what the model list shows."""

from __future__ import annotations

from .engines import engine_list


def tts_model_list() -> list[dict]:
    """Every engine with whether it is usable here (and why not), its voices and abilities."""
    return [engine.describe() for engine in engine_list()]
