"""Reads about engines for the web: what the workers reported (`contracts.catalogue`) and
the checks a request passes before it is queued. Nothing here loads an engine: the web
process never imports piper, onnxruntime, libespeak-ng or torch. The worker that runs a
request checks it again with the engine itself."""

from __future__ import annotations

from django.conf import settings

from contracts.catalogue import catalogue_read
from contracts.engines import (
    DEFAULT_ASR_ENGINE,
    DEFAULT_LIPSYNC_ENGINE,
    DEFAULT_RESPONDER,
    asr_engine_names,
    clone_engine_names,
    lipsync_engine,
    lipsync_engine_names,
    responder_names,
    tts_engine_names,
)
from contracts.errors import EngineUnavailable, InvalidInput


def lipsync_engine_list() -> list[dict]:
    return catalogue_read("lipsync")


def tts_engine_list() -> list[dict]:
    return catalogue_read("tts")


def asr_engine_list() -> list[dict]:
    """Speech recognition engines as the live workers reported them (id, available, reason, …)."""
    return catalogue_read("asr")


def llm_engine_list() -> list[dict]:
    """Responders (knowledge base, LLM servers) as the live workers reported them."""
    return catalogue_read("llm")


def _row(rows: list[dict], name: str) -> dict:
    return next(row for row in rows if row["id"] == name)


def lipsync_engine_default() -> str:
    """The first engine a worker can run without per-avatar weights (catalogue order)."""
    for row in lipsync_engine_list():
        if row["available"] and not lipsync_engine(row["id"]).per_avatar_weights:
            return row["id"]
    return DEFAULT_LIPSYNC_ENGINE


def lipsync_engine_resolve(requested: str | None) -> str:
    """The engine for a new avatar: the default when none is asked for; a known engine
    some worker can run otherwise (the 400 says why not)."""
    if requested in (None, ""):
        return lipsync_engine_default()
    names = lipsync_engine_names()
    if requested not in names:
        raise InvalidInput(
            f"Unknown avatar_model '{requested}'; choose one of: {', '.join(names)}.", field="avatar_model"
        )
    row = _row(lipsync_engine_list(), requested)
    if not row["available"] and requested != DEFAULT_LIPSYNC_ENGINE:
        raise InvalidInput(
            f"The lip-sync engine '{requested}' cannot be used here: {row['reason']}", field="avatar_model"
        )
    return requested


def tts_engine_resolve(requested: str | None, *, support_clone: bool = False) -> str:
    """A known TTS engine name (the default when none is asked for) that can clone when asked to."""
    names = tts_engine_names()
    tts_model = requested or settings.DEFAULT_TTS_MODEL
    if tts_model not in names:
        raise InvalidInput(f"Unknown TTS model '{tts_model}'.", field="tts_model", extra={"valid_tts_models": names})
    if support_clone and tts_model not in clone_engine_names():
        cloners = clone_engine_names()
        raise InvalidInput(
            f"The TTS engine '{tts_model}' cannot clone voices; engines that can: {', '.join(cloners) or 'none'}.",
            field="support_clone",
        )
    return tts_model


def _known_name(requested: str | None, names: list[str], default: str, field: str) -> str:
    """`requested` when it is one of `names`, `default` when blank; else a 400 naming them."""
    if requested in (None, ""):
        return default
    if requested not in names:
        raise InvalidInput(
            f"Unknown {field} '{requested}'; choose one of: {', '.join(names)}.",
            field=field,
            extra={f"valid_{field}s": names},
        )
    return requested


def asr_engine_resolve(requested: str | None) -> str:
    """A known ASR engine name (the default when none is asked for). Like `tts_model`, an
    engine no live worker can run now is accepted: workers come and go, and the live
    session says why it cannot listen when it opens."""
    return _known_name(requested, asr_engine_names(), DEFAULT_ASR_ENGINE, "asr_model")


def responder_resolve(requested: str | None) -> str:
    """A known responder name for `llm_model` (the default when none is asked for); its
    availability is the live session's to report, as for `asr_engine_resolve`."""
    return _known_name(requested, responder_names(), DEFAULT_RESPONDER, "llm_model")


def tts_text_check(text, *, max_chars: int | None = None) -> str:
    """The text stripped, when there is something to say within the limit."""
    limit = max_chars or settings.TTS_MAX_TEXT_CHARS
    text = text.strip() if isinstance(text, str) else ""
    if not text or not any(ch.isalnum() for ch in text):
        raise InvalidInput("The text to speak is empty.", field="text")
    if len(text) > limit:
        raise InvalidInput(
            f"The text is too long: {len(text)} characters, at most {limit}.", field="text", extra={"max_chars": limit}
        )
    return text


def tts_request_check(
    text, tts_model: str | None, voice: str | None = None, *, max_chars: int | None = None
) -> tuple[str, str, str]:
    """(engine, voice, text) of a speech request, checked against what the tts workers
    reported: a known engine that one of them can run, and one of its voices."""
    text = tts_text_check(text, max_chars=max_chars)
    tts_model = tts_engine_resolve(tts_model)
    row = _row(tts_engine_list(), tts_model)
    if not row["available"]:
        raise EngineUnavailable(
            f"{row['display_name']} is not available: {row['reason']}", extra={"tts_model": tts_model}
        )
    voices = [v["id"] for v in row.get("voices", [])]
    if voice and voices and voice not in voices:
        raise InvalidInput(
            f"Unknown voice '{voice}' for {row['display_name']}.", field="voice", extra={"valid_voices": voices}
        )
    return tts_model, voice or (voices[0] if voices else ""), text
