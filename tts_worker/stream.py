"""The Redis side of streaming synthesis, shared by the worker (writes) and `TTSStream` (reads).

One request has a list of messages (RPUSH by the worker, BLPOP by the caller), a cancel flag
the worker checks before every sentence, and a claim so that a redelivered task does not
speak twice. Every key expires, so an abandoned request leaves nothing behind.

A message is a JSON header, a newline, then the chunk's raw PCM (int16 little-endian) if any.
Header types: "chunk" (index, sample_rate, text, timings, words), "end" (chunks, cancelled)
and "error" (status, error, detail, plus the error's extra fields).
"""
from __future__ import annotations

import json
import threading

import numpy as np
import redis
from django.conf import settings

from .engines.base import AudioChunk, Timing

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


def redis_client() -> redis.Redis:
    url = settings.REDIS_URL
    with _lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(url, socket_timeout=None, health_check_interval=30)
        return _clients[url]


def ttl() -> int:
    return int(getattr(settings, "TTS_STREAM_TTL", 300))


def key(request_id: str, part: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:tts:stream:{request_id}:{part}"


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
    with redis_client().pipeline() as pipe:
        pipe.rpush(list_key, message)
        pipe.expire(list_key, ttl())
        pipe.execute()


def claim(request_id: str) -> bool:
    """True for the first worker to take the request; a redelivered copy gets False."""
    return bool(redis_client().set(key(request_id, "claim"), b"1", nx=True, ex=ttl()))


def cancel(request_id: str) -> None:
    redis_client().set(key(request_id, "cancel"), b"1", ex=ttl())


def is_cancelled(request_id: str) -> bool:
    return bool(redis_client().exists(key(request_id, "cancel")))


def pop(request_id: str, timeout: float) -> bytes | None:
    item = redis_client().blpop([key(request_id, "chunks")], timeout=timeout)
    return item[1] if item else None


def discard(request_id: str) -> None:
    redis_client().delete(key(request_id, "chunks"))
