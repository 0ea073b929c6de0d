"""Speech synthesis: validation, previews and the streaming path for live sessions.

Views, tasks and `TTSStream` call these; none of them talks to an engine directly.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import numpy as np
from django.conf import settings
from scipy.signal import resample_poly

from contracts import tts_stream as stream
from contracts.errors import EngineUnavailable, InvalidInput, ServiceError

from .audio import wav_bytes
from .engines import AudioChunk, TTSEngine, VoiceReference, get_engine
from .text import normalize

logger = logging.getLogger(__name__)


def max_text_chars() -> int:
    return int(getattr(settings, "TTS_MAX_TEXT_CHARS", 5000))


def preview_max_chars() -> int:
    return int(getattr(settings, "TTS_PREVIEW_MAX_CHARS", 500))


def tts_request_validate(
    text: str, tts_model: str, voice: str | None = None, *, max_chars: int | None = None, clone: bool = False
) -> tuple[TTSEngine, str, str]:
    """(engine, voice id, normalised text) for a request, or InvalidInput saying what is valid."""
    limit = max_chars or max_text_chars()
    text = normalize(text if isinstance(text, str) else "")
    if not text or not any(ch.isalnum() for ch in text):
        raise InvalidInput("The text to speak is empty.", field="text")
    if len(text) > limit:
        raise InvalidInput(
            f"The text is too long: {len(text)} characters, at most {limit}.", field="text", extra={"max_chars": limit}
        )
    engine = get_engine(tts_model or getattr(settings, "DEFAULT_TTS_MODEL", "piper"))
    voice_id = engine.resolve_voice(voice or None)
    if clone and not engine.supports_clone:
        raise InvalidInput(
            f"{engine.display_name} cannot clone a voice.",
            field="tts_model",
            extra={"clone_tts_models": clone_engine_names()},
        )
    return engine, voice_id, text


def clone_engine_names() -> list[str]:
    from .engines import engine_list

    return [e.name for e in engine_list() if e.supports_clone]


def tts_engine_require_available(engine: TTSEngine) -> None:
    available, reason = engine.availability()
    if not available:
        raise EngineUnavailable(f"{engine.display_name} is not available: {reason}", extra={"tts_model": engine.name})


@contextlib.contextmanager
def _reference(reference_path: str, reference_text: str) -> Iterator[VoiceReference | None]:
    """The reference as a local file for as long as synthesis needs it (S3 gets a temp copy)."""
    if not reference_path:
        yield None
        return
    from avatars.storage import storage_local_path

    try:
        with storage_local_path(reference_path) as local:
            yield VoiceReference(local, reference_text)
    except FileNotFoundError:
        raise InvalidInput(f"The voice reference '{reference_path}' does not exist.", field="avatar_id") from None


def tts_synthesize(
    text: str, tts_model: str, voice: str = "", reference: VoiceReference | None = None
) -> Iterator[AudioChunk]:
    engine, voice_id, text = tts_request_validate(text, tts_model, voice, clone=reference is not None)
    tts_engine_require_available(engine)
    return engine.synthesize(text, voice_id, reference)


def _join(chunks: list[AudioChunk]) -> tuple[np.ndarray, int]:
    """One signal at the first chunk's rate (engines keep one rate, servers might not)."""
    rate = chunks[0].sample_rate
    parts = []
    for c in chunks:
        pcm = c.pcm
        if c.sample_rate != rate:
            pcm = np.clip(resample_poly(pcm.astype(np.float32), rate, c.sample_rate), -32768, 32767).astype(np.int16)
        parts.append(pcm)
    return np.concatenate(parts), rate


def tts_preview_wav(
    text: str, tts_model: str, voice: str = "", reference_path: str = "", reference_text: str = ""
) -> bytes:
    """The whole text as one WAV file (for previews in the admin and the API)."""
    with _reference(reference_path, reference_text) as reference:
        engine, voice_id, text = tts_request_validate(
            text, tts_model, voice, max_chars=preview_max_chars(), clone=reference is not None
        )
        tts_engine_require_available(engine)
        chunks = list(engine.synthesize(text, voice_id, reference))
    if not chunks:
        raise InvalidInput("The text has nothing to speak.", field="text")
    pcm, rate = _join(chunks)
    return wav_bytes(pcm, rate)


def tts_stream_publish(
    request_id: str, text: str, tts_model: str, voice: str = "", reference_path: str = "", reference_text: str = ""
) -> dict:
    """Synthesise sentence by sentence, pushing each chunk to the request's Redis list as soon
    as it is done, until the end or a cancel. Always ends the stream with "end" or "error"."""
    if not stream.claim(request_id):
        logger.info("TTS stream %s already taken by another delivery; skipping", request_id)
        return {"request_id": request_id, "skipped": True}
    sent, cancelled = 0, False
    try:
        with _reference(reference_path, reference_text) as reference:
            chunks = tts_synthesize(text, tts_model, voice, reference)
            try:
                while True:
                    # Checked before every sentence: an interrupt stops synthesis at once.
                    if stream.is_cancelled(request_id):
                        cancelled = True
                        break
                    chunk = next(chunks, None)
                    if chunk is None:
                        break
                    stream.push(request_id, stream.chunk_message(sent, chunk))
                    sent += 1
            finally:
                chunks.close()
    except ServiceError as exc:
        error = {"type": "error", "status": exc.status_code, "error": type(exc).__name__, **exc.as_dict()}
        stream.push(request_id, stream.encode(error))
        return {"request_id": request_id, "chunks": sent, "error": exc.detail}
    except Exception as exc:
        logger.exception("TTS stream %s failed", request_id)
        error = {
            "type": "error",
            "status": 500,
            "error": type(exc).__name__,
            "detail": f"Speech synthesis failed: {exc}",
        }
        stream.push(request_id, stream.encode(error))
        raise
    stream.push(request_id, stream.encode({"type": "end", "chunks": sent, "cancelled": cancelled}))
    return {"request_id": request_id, "chunks": sent, "cancelled": cancelled}


def tts_stream_cancel(request_id: str) -> None:
    stream.cancel(request_id)


def tts_engines_warm_up(names: list[str] | None = None) -> None:
    """Load engines' models now, so that the first request does not pay for it."""
    from .engines import engine_list

    for engine in engine_list():
        if names is not None and engine.name not in names:
            continue
        load = getattr(engine, "load", None)
        if load and engine.availability()[0]:
            try:
                start = time.perf_counter()
                load()
                logger.info("TTS engine %s warmed up in %.1f s", engine.name, time.perf_counter() - start)
            except ServiceError as exc:
                logger.warning("Could not warm up %s: %s", engine.name, exc.detail)
