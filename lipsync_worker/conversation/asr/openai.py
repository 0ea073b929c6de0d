"""A client of the operator's OpenAI-compatible transcription server (the OpenAI API,
faster-whisper-server / speaches, vLLM, LocalAI, …): `POST {ASR_URL}/audio/transcriptions`
with the utterance as a 16-bit WAV, once it ends."""

from __future__ import annotations

import io
import threading
import wave

import numpy as np
from django.conf import settings

from contracts.conversation import ASR_SAMPLE_RATE
from contracts.errors import ServiceUnavailable

from .base import ASREngine, BufferingTranscriber, Transcriber, float_to_int16


def wav_bytes(pcm: np.ndarray, sample_rate: int = ASR_SAMPLE_RATE) -> bytes:
    """Mono float32 audio as a 16-bit PCM WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(float_to_int16(pcm).tobytes())
    return buffer.getvalue()


class OpenAITranscriptionEngine(ASREngine):
    name = "openai"

    def __init__(self):
        self._client = None  # one pool of connections for every session of the worker
        self._lock = threading.Lock()

    def availability(self) -> tuple[bool, str]:
        if not settings.ASR_URL:
            return False, "ASR_URL is not set (the base URL of an OpenAI-compatible server, e.g. http://host:8000/v1)."
        return True, ""

    def model(self) -> str:
        return settings.ASR_MODEL

    def transcriber(self, language: str = "en") -> Transcriber:
        self._require_available()
        return OpenAITranscriber(self, language)

    def transcribe(self, pcm: np.ndarray, language: str) -> str:
        """The server's transcript of `pcm`; ServiceUnavailable (without the URL, which may
        name internal hosts) when it is down, slow, failing or answers nonsense."""
        import httpx

        headers = {"Authorization": f"Bearer {settings.ASR_API_KEY}"} if settings.ASR_API_KEY else {}
        data = {"model": settings.ASR_MODEL, "response_format": "json"}
        if language:
            data["language"] = language
        try:
            response = self._http().post(
                settings.ASR_URL.rstrip("/") + "/audio/transcriptions",
                data=data,
                files={"file": ("speech.wav", wav_bytes(pcm), "audio/wav")},
                headers=headers,
                timeout=settings.ASR_TIMEOUT,
            )
        except httpx.TimeoutException:
            raise ServiceUnavailable(
                f"The transcription server did not answer within {settings.ASR_TIMEOUT:g} s (ASR_TIMEOUT)."
            ) from None
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"The transcription server cannot be reached (ASR_URL): {type(exc).__name__}."
            ) from None
        if response.status_code in (401, 403):
            raise ServiceUnavailable(f"The transcription server refused the key (ASR_API_KEY): {response.status_code}.")
        if response.status_code >= 400:
            raise ServiceUnavailable(f"The transcription server failed: HTTP {response.status_code}.")
        try:
            text = response.json()["text"]
        except (ValueError, KeyError, TypeError):
            raise ServiceUnavailable(
                'The transcription server\'s answer is not the expected JSON {"text": …}.'
            ) from None
        if not isinstance(text, str):
            raise ServiceUnavailable("The transcription server's answer has no text.")
        return text.strip()

    def _http(self):
        with self._lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client()
            return self._client


class OpenAITranscriber(BufferingTranscriber):
    def __init__(self, engine: OpenAITranscriptionEngine, language: str):
        super().__init__()
        self._engine = engine
        self._language = language

    def finish(self) -> str:
        audio = self.audio()
        if not len(audio):
            return ""
        return self._engine.transcribe(audio, self._language)
