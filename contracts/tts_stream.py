"""Streaming synthesis between processes: the tts worker writes, `TTSStream` reads.

One request has a list of messages (RPUSH by the worker, BLPOP by the caller), a cancel flag
the worker checks before every sentence, and a claim so that a redelivered task does not
speak twice. Every key expires, so an abandoned request leaves nothing behind.

A message is a JSON header, a newline, then the chunk's raw PCM (int16 little-endian) if any.
Header types: "chunk" (index, sample_rate, text, timings, words), "end" (chunks, cancelled)
and "error" (status, error, detail, plus the error's extra fields).

`TTSStream`: how another process (the lip-sync worker) gets speech from the tts worker.

    stream = TTSStream().start("Hello. How are you?", "piper")
    for chunk in stream.chunks(timeout=10):   # AudioChunk, one per sentence, as they are done
        play(chunk)
    stream.cancel()                            # interrupt: the worker stops at once

The request travels as a Celery task on the `tts` queue; chunks come back through the
Redis list above.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import numpy as np
from django.conf import settings

from .errors import EngineUnavailable, error_from_payload
from .speech import AudioChunk, Timing
from .store import client, redis_key
from .tasks import TTS_STREAM, task_send


def ttl() -> int:
    return int(getattr(settings, "TTS_STREAM_TTL", 300))


def key(request_id: str, part: str) -> str:
    return redis_key("tts", "stream", request_id, part)


def encode(header: dict, pcm: np.ndarray | None = None) -> bytes:
    body = np.asarray(pcm, dtype="<i2").tobytes() if pcm is not None else b""
    return json.dumps(header, ensure_ascii=False).encode() + b"\n" + body


def decode(message: bytes) -> tuple[dict, bytes]:
    head, _, body = message.partition(b"\n")
    return json.loads(head), body


def chunk_message(index: int, chunk: AudioChunk) -> bytes:
    header = {
        "type": "chunk",
        "index": index,
        "sample_rate": chunk.sample_rate,
        "text": chunk.text,
        "timings": [list(t) for t in chunk.timings],
        "words": [list(t) for t in chunk.words],
    }
    return encode(header, chunk.pcm)


def chunk_from_message(header: dict, body: bytes) -> AudioChunk:
    return AudioChunk(
        pcm=np.frombuffer(body, dtype="<i2").astype(np.int16),
        sample_rate=int(header["sample_rate"]),
        text=header["text"],
        timings=[Timing(*t) for t in header.get("timings", [])],
        words=[Timing(*t) for t in header.get("words", [])],
    )


def push(request_id: str, message: bytes) -> None:
    list_key = key(request_id, "chunks")
    with client(blocking=True).pipeline() as pipe:
        pipe.rpush(list_key, message)
        pipe.expire(list_key, ttl())
        pipe.execute()


def claim(request_id: str) -> bool:
    """True for the first worker to take the request; a redelivered copy gets False."""
    return bool(client(blocking=True).set(key(request_id, "claim"), b"1", nx=True, ex=ttl()))


def cancel(request_id: str) -> None:
    client(blocking=True).set(key(request_id, "cancel"), b"1", ex=ttl())


def is_cancelled(request_id: str) -> bool:
    return bool(client(blocking=True).exists(key(request_id, "cancel")))


def pop(request_id: str, timeout: float) -> bytes | None:
    item = client(blocking=True).blpop([key(request_id, "chunks")], timeout=timeout)
    return item[1] if item else None


def discard(request_id: str) -> None:
    client(blocking=True).delete(key(request_id, "chunks"))


# --- the reading side ---------------------------------------------------------------------


class TTSStream:
    def __init__(self, request_id: str | None = None):
        self.request_id = request_id or uuid.uuid4().hex
        self.cancelled = False
        self.finished = False
        self.task_id = ""

    def start(
        self, text: str, engine: str, voice: str = "", *, reference_path: str = "", reference_text: str = ""
    ) -> TTSStream:
        """Enqueue the request for a tts worker. The worker checks it: a bad request comes back
        as the error of the first `chunks()` step (the web checked it before it got here)."""
        result = task_send(
            TTS_STREAM, self.request_id, text, engine, voice, reference_path, reference_text, expires=ttl()
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
                        f"No speech from the TTS worker within {timeout:g} s: "
                        "is a worker serving the 'tts' queue running?"
                    )
                # Short waits so that a cancel() from another thread ends iteration promptly.
                message = pop(self.request_id, timeout=min(remaining, 1.0))
                if message is None and self.cancelled:
                    self.finished = True
                    return
            header, body = decode(message)
            kind = header.get("type")
            if kind == "chunk":
                if not self.cancelled:
                    yield chunk_from_message(header, body)
            elif kind == "end":
                self.finished = True
            elif kind == "error":
                self.finished = True
                payload = {k: v for k, v in header.items() if k not in ("type", "error")}
                payload.setdefault("detail", "Speech synthesis failed.")
                raise error_from_payload({**payload, "type": header.get("error", "")})

    def __iter__(self) -> Iterator[AudioChunk]:
        return self.chunks()

    def cancel(self) -> None:
        """Stop synthesis now; chunks already queued are dropped."""
        self.cancelled = True
        cancel(self.request_id)
        discard(self.request_id)
