"""edge-tts: Microsoft Edge's online read-aloud service through the `edge-tts` client.

Needs the internet: availability is a short TCP probe of the service host, cached. Audio
arrives as MP3 (decoded with PyAV) together with word boundaries, which become the timings.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
from urllib.parse import urlsplit

from contracts.errors import EngineUnavailable

from ..audio import decode_audio
from .base import AudioChunk, Timing, TTSEngine, Voice, VoiceReference, fill_gaps
from .remote import DOWN_TTL, UP_TTL, cached, forget, tcp_probe

_TICKS_PER_MS = 10_000  # edge reports offsets in 100 ns ticks
# Shown (and accepted) whatever the service's own list says, so that the choice of a voice
# does not depend on whether the service was reachable when the list was asked for.
KNOWN_VOICES = [
    Voice("en-US-AriaNeural", "Aria (en-US)", "en-US", "female"),
    Voice("en-US-JennyNeural", "Jenny (en-US)", "en-US", "female"),
    Voice("en-US-GuyNeural", "Guy (en-US)", "en-US", "male"),
    Voice("en-US-AndrewMultilingualNeural", "Andrew multilingual (en-US)", "en-US", "male"),
    Voice("en-US-EmmaMultilingualNeural", "Emma multilingual (en-US)", "en-US", "female"),
    Voice("en-GB-SoniaNeural", "Sonia (en-GB)", "en-GB", "female"),
    Voice("en-GB-RyanNeural", "Ryan (en-GB)", "en-GB", "male"),
    Voice("zh-CN-XiaoxiaoNeural", "Xiaoxiao (zh-CN)", "zh-CN", "female"),
    Voice("zh-CN-XiaoyiNeural", "Xiaoyi (zh-CN)", "zh-CN", "female"),
    Voice("zh-CN-YunxiNeural", "Yunxi (zh-CN)", "zh-CN", "male"),
    Voice("zh-CN-YunjianNeural", "Yunjian (zh-CN)", "zh-CN", "male"),
]


def _service_host() -> str:
    from edge_tts import constants

    return urlsplit(constants.WSS_URL).hostname or ""


def _run(coro):
    """Run a coroutine to completion from sync code, even when called inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class EdgeTTSEngine(TTSEngine):
    name = "edge-tts"
    streaming = True
    timings = "word"

    def availability(self) -> tuple[bool, str]:
        try:
            host = _service_host()
        except ImportError:
            return False, "The edge-tts package is not installed."
        error = cached(f"up:{self.name}", lambda e: DOWN_TTL if e else UP_TTL, lambda: tcp_probe(host, 443) or "ok")
        if error != "ok":
            return False, f"The edge-tts service ({host}) cannot be reached from this machine: {error}"
        return True, ""

    def voices(self) -> list[Voice]:
        voices = list(KNOWN_VOICES)
        if self.availability()[0]:
            known = {v.id for v in voices}
            listed = cached("voices:edge-tts", lambda v: 86400 if v else DOWN_TTL, _service_voices)
            voices += [v for v in listed if v.id not in known]
        return voices

    def default_voice(self) -> str:
        return KNOWN_VOICES[0].id

    def synthesize_sentence(self, sentence: str, voice: str, reference: VoiceReference | None) -> AudioChunk | None:
        available, reason = self.availability()
        if not available:
            raise EngineUnavailable(reason)
        try:
            mp3, boundaries = _run(_stream(sentence, voice))
        except Exception as exc:  # aiohttp, edge_tts and timeouts all mean the same here
            forget(f"up:{self.name}")
            raise EngineUnavailable(f"edge-tts synthesis failed: {exc or exc.__class__.__name__}") from exc
        if not mp3:
            raise EngineUnavailable("edge-tts returned no audio.")
        pcm, rate = decode_audio(io.BytesIO(mp3))
        duration = 1000.0 * len(pcm) / rate
        words = fill_gaps(boundaries, duration)
        return AudioChunk(pcm, rate, sentence, words, words)


async def _stream(sentence: str, voice: str) -> tuple[bytes, list[Timing]]:
    import edge_tts

    communicate = edge_tts.Communicate(sentence, voice, boundary="WordBoundary", connect_timeout=5, receive_timeout=30)
    audio, words = bytearray(), []
    async for item in communicate.stream():
        if item["type"] == "audio":
            audio += item["data"]
        elif item["type"] == "WordBoundary":
            start = item["offset"] / _TICKS_PER_MS
            words.append(Timing(item["text"], start, start + item["duration"] / _TICKS_PER_MS))
    return bytes(audio), words


def _service_voices() -> list[Voice]:
    import edge_tts

    try:
        listed = _run(edge_tts.list_voices())
    except Exception:  # noqa: BLE001 - the fixed list still applies
        return []
    genders = {"Female": "female", "Male": "male"}
    return [
        Voice(
            v["ShortName"], v.get("FriendlyName") or v["ShortName"], v.get("Locale", ""), genders.get(v.get("Gender"))
        )
        for v in listed
    ]
