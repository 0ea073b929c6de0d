"""`TTSStream`: how another process (the lip-sync worker) gets speech from the tts worker.

    stream = TTSStream().start("Hello. How are you?", "piper")
    for chunk in stream.chunks(timeout=10):   # AudioChunk, one per sentence, as they are done
        play(chunk)
    stream.cancel()                            # interrupt: the worker stops at once

The request travels as a Celery task on the `tts` queue; chunks come back through a Redis
list (see `tts_worker.stream`).
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from contracts.errors import EngineUnavailable, InvalidInput, ServiceError

from . import services, stream
from .engines import AudioChunk

_ERRORS = {"InvalidInput": InvalidInput, "EngineUnavailable": EngineUnavailable}


class TTSStream:
    def __init__(self, request_id: str | None = None):
        self.request_id = request_id or uuid.uuid4().hex
        self.cancelled = False
        self.finished = False
        self.task_id = ""

    def start(
        self, text: str, engine: str, voice: str = "", *, reference_path: str = "", reference_text: str = ""
    ) -> "TTSStream":
        """Check the request here (bad input fails now, not later in the worker) and enqueue it."""
        from .tasks import tts_stream

        tts_engine, voice_id, text = services.tts_request_validate(text, engine, voice, clone=bool(reference_path))
        services.tts_engine_require_available(tts_engine)
        result = tts_stream.apply_async(
            args=[self.request_id, text, tts_engine.name, voice_id, reference_path, reference_text],
            expires=stream.ttl(),
        )
        self.task_id = result.id
        return self

    def chunks(self, timeout: float = 30.0) -> Iterator[AudioChunk]:
        """Chunks in order until the stream ends. `timeout` bounds the wait for each one;
        when nothing comes in time (no tts worker running?) EngineUnavailable is raised."""
        while not self.finished:
            deadline = time.monotonic() + timeout
            message = None
            while message is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise EngineUnavailable(
                        f"No speech from the TTS worker within {timeout:g} s: is a worker serving the 'tts' queue running?"
                    )
                # Short waits so that a cancel() from another thread ends iteration promptly.
                message = stream.pop(self.request_id, timeout=min(remaining, 1.0))
                if message is None and self.cancelled:
                    self.finished = True
                    return
            header, body = stream.decode(message)
            kind = header.get("type")
            if kind == "chunk":
                if not self.cancelled:
                    yield stream.chunk_from_message(header, body)
            elif kind == "end":
                self.finished = True
            elif kind == "error":
                self.finished = True
                error = _ERRORS.get(header.get("error"), ServiceError)
                extra = {k: v for k, v in header.items() if k not in ("type", "status", "error", "detail", "field")}
                exc = error(header.get("detail", "Speech synthesis failed."), field=header.get("field"), extra=extra)
                exc.status_code = header.get("status", exc.status_code)
                raise exc

    def __iter__(self) -> Iterator[AudioChunk]:
        return self.chunks()

    def cancel(self) -> None:
        """Stop synthesis now; chunks already queued are dropped."""
        self.cancelled = True
        services.tts_stream_cancel(self.request_id)
        stream.discard(self.request_id)
