"""One viewer's live session: an aiortc peer, its clock, and the speech it is asked to say.

Every 40 ms the session's clock shows the next rendered speech frame (with its 640 audio
samples) or, when there is none, the avatar's idle loop with silence. Speech is rendered
ahead on a thread per utterance: the tts worker streams sentences, each is lip-synced by
the avatar's warmed engine (shared by every session of the avatar) and queued, at most
MAX_AHEAD ticks ahead of the clock. An interrupt cancels synthesis and drops what is
queued, so the next tick is idle again.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from tutor_site.exceptions import ServiceError

from ..engines.base import SAMPLES_PER_FRAME
from ..speech import segment_from_tts_chunk
from . import registry
from .ice import remote_sdp_filter, rtc_configuration
from .subtitles import word_starts
from .tracks import SILENT_TICK, TickTrack, audio_frames, video_frame

logger = logging.getLogger(__name__)

TICK = 0.04
# Rendered speech may run this many ticks (2 s) ahead of the clock; it bounds memory per
# session and what an interrupt has to throw away.
MAX_AHEAD = 50
# When the process was starved for longer than this, the clock jumps ahead instead of
# bursting the missed frames out (the receiver sees a gap, not a fast-forward).
MAX_LATE = 0.25
TTS_CHUNK_TIMEOUT = 30.0

_utterance_ids = itertools.count(1)


@dataclass(eq=False)
class Utterance:
    text: str
    tts_model: str
    voice: str
    id: int = field(default_factory=lambda: next(_utterance_ids))
    cancelled: bool = False
    stream: object = None
    said_at: float = field(default_factory=time.monotonic)


@dataclass
class SpeechTick:
    utterance: Utterance
    image: np.ndarray
    pcm: np.ndarray
    step: int
    words: list
    mouth_open: float


@dataclass
class SpeechEnd:
    utterance: Utterance


class LiveSession:
    def __init__(self, runtime, avatar, *, user_id: int, reply_to: str | None):
        self.runtime = runtime
        self.avatar = avatar  # runtime.LiveAvatar
        self.id = uuid.uuid4().hex
        self.user_id = user_id
        self.reply_to = reply_to
        self.loop = asyncio.get_running_loop()
        self.pc = None
        self.video = TickTrack("video")
        self.audio = TickTrack("audio")
        self.items: deque = deque()
        self.pending: deque[Utterance] = deque()
        self.rendering: Utterance | None = None
        self.playing: Utterance | None = None
        self.pos = 0  # step of the idle loop shown next
        self.tick = 0
        self.closed = False
        self.connected = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self.stats = {"ticks": 0, "skipped": 0, "speech_ticks": 0}

    # --- signaling ------------------------------------------------------------------

    async def answer(self, sdp: str, sdp_type: str = "offer") -> str:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        kinds = {line.split()[0][2:] for line in sdp.splitlines() if line.startswith("m=")}
        if not {"audio", "video"} <= kinds:
            raise ServiceError("The offer must receive both audio and video (add recvonly transceivers for both).")
        self.pc = RTCPeerConnection(rtc_configuration())
        self.pc.on("connectionstatechange", self._on_connection_state)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=remote_sdp_filter(sdp), type=sdp_type))
        self.pc.addTrack(self.video)
        self.pc.addTrack(self.audio)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._spawn(self._clock())
        self._spawn(self._connect_watchdog())
        return self.pc.localDescription.sdp

    async def _on_connection_state(self):
        state = self.pc.connectionState
        await self.emit({"type": "state", "state": state})
        if state == "connected":
            self.connected.set()
        elif state in ("failed", "closed"):
            await self.close(f"connection {state}")

    async def _connect_watchdog(self):
        try:
            await asyncio.wait_for(self.connected.wait(), settings.LIVE_CONNECT_TIMEOUT)
        except asyncio.TimeoutError:
            await self.emit({"type": "error", "detail": "The WebRTC connection was not established in time."})
            await self.close("connect timeout")

    # --- speech ---------------------------------------------------------------------

    @property
    def speaking(self) -> bool:
        return bool(self.playing or self.rendering or self.pending)

    async def say(self, text: str, *, interrupt: bool = False, tts_model: str = "", voice: str = "") -> None:
        if interrupt:
            await self.interrupt()
        if len(self.pending) >= settings.LIVE_MAX_PENDING_SAYS:
            await self.emit({"type": "error", "detail": (
                f"{len(self.pending)} texts are already waiting to be spoken; interrupt or wait.")})
            return
        self.pending.append(Utterance(text, tts_model or self.avatar.tts_model, voice or self.avatar.voice))
        self._next_utterance()

    def _next_utterance(self) -> None:
        if self.rendering is not None or not self.pending or self.closed:
            return
        self.rendering = self.pending.popleft()
        threading.Thread(target=self._render, args=(self.rendering,), name=f"live-say-{self.id[:6]}",
                         daemon=True).start()

    def _rendered(self, utterance: Utterance) -> None:
        # Back on the loop: the thread that rendered `utterance` is done.
        if self.rendering is utterance:
            self.rendering = None
        self._next_utterance()

    async def interrupt(self) -> None:
        dropped = ([self.rendering] if self.rendering else []) + list(self.pending)
        self.pending.clear()
        for utterance in dropped:
            utterance.cancelled = True
        # The cancelled text's thread winds down by itself (it may be waiting on the tts
        # worker); the next text starts at once instead of waiting for it.
        self.rendering = None
        if self.playing is not None:
            self.playing.cancelled = True
        self.items.clear()
        playing, self.playing = self.playing, None
        streams = [u.stream for u in dropped if u.stream is not None]
        if streams:
            # Redis calls: off the loop, and nobody waits for them.
            self.loop.run_in_executor(None, lambda: [s.cancel() for s in streams])
        if playing is not None:
            await self.emit({"type": "speaking_ended", "utterance": playing.id, "interrupted": True})

    def _render(self, utterance: Utterance) -> None:
        """Thread: stream the sentences from the tts worker and lip-sync each as it comes."""
        from tts_worker.client import TTSStream

        warm = self.avatar.warm
        try:
            stream = TTSStream()
            utterance.stream = stream
            stream.start(utterance.text, utterance.tts_model, utterance.voice,
                         reference_path=self.avatar.reference_path, reference_text=self.avatar.reference_text)
            step = self.pos + len(self.items) + 1
            offset_ms = 0.0
            for chunk in stream.chunks(timeout=TTS_CHUNK_TIMEOUT):
                if utterance.cancelled or self.closed:
                    break
                segment = segment_from_tts_chunk(chunk)
                frames = segment.frame_count
                pcm = np.zeros(frames * SAMPLES_PER_FRAME, np.int16)
                pcm[:len(segment.samples)] = np.clip(segment.samples * 32767.0, -32768, 32767).astype(np.int16)
                words = word_starts(chunk)
                w = 0
                for k, rendered in enumerate(warm.engine.render(warm.handle, segment, step)):
                    while len(self.items) >= MAX_AHEAD and not (utterance.cancelled or self.closed):
                        time.sleep(0.01)
                    if utterance.cancelled or self.closed:
                        break
                    here = []
                    while w < len(words) and words[w][1] < (k + 1) * 40.0:
                        here.append({"text": words[w][0], "start_ms": round(offset_ms + words[w][1])})
                        w += 1
                    self.items.append(SpeechTick(utterance, rendered.image,
                                                 pcm[k * SAMPLES_PER_FRAME:(k + 1) * SAMPLES_PER_FRAME],
                                                 step + k, here, rendered.mouth_open))
                step += frames
                offset_ms += frames * 40.0
        except ServiceError as exc:
            self._emit_threadsafe({"type": "error", "detail": exc.detail, "utterance": utterance.id})
        except Exception as exc:  # noqa: BLE001 - one failed text must not end the session
            logger.exception("Live session %s: speaking failed", self.id)
            self._emit_threadsafe({"type": "error", "detail": f"Speaking failed: {exc}", "utterance": utterance.id})
        finally:
            self.items.append(SpeechEnd(utterance))
            if not self.closed:
                self.loop.call_soon_threadsafe(self._rendered, utterance)

    # --- the clock ------------------------------------------------------------------

    def _next_item(self) -> SpeechTick | None:
        while self.items:
            item = self.items.popleft()
            if item.utterance.cancelled:
                continue
            if isinstance(item, SpeechEnd):
                if self.playing is item.utterance:
                    self.playing = None
                    self._spawn(self.emit({"type": "speaking_ended", "utterance": item.utterance.id,
                                           "interrupted": False}))
                continue
            if self.playing is not item.utterance:
                self.playing = item.utterance
                latency = round((time.monotonic() - item.utterance.said_at) * 1000)
                self._spawn(self.emit({"type": "speaking_started", "utterance": item.utterance.id,
                                       "text": item.utterance.text, "latency_ms": latency}))
            for word in item.words:
                self._spawn(self.emit({"type": "word", "utterance": item.utterance.id, **word}))
            self.pos = item.step + 1
            return item
        return None

    async def _clock(self) -> None:
        start = self.loop.time()
        try:
            while not self.closed:
                due = start + self.tick * TICK
                now = self.loop.time()
                if now < due:
                    await asyncio.sleep(due - now)
                elif now - due > MAX_LATE:
                    skipped = int((now - due) / TICK)
                    self.tick += skipped
                    self.stats["skipped"] += skipped
                item = self._next_item()
                if item is not None:
                    image, pcm = item.image, item.pcm
                    self.stats["speech_ticks"] += 1
                else:
                    index = self.avatar.warm.assets.idle_frame_index(self.pos)
                    self.pos += 1
                    image = self.avatar.cached_frame(index)
                    if image is None:
                        image = await self.loop.run_in_executor(None, self.avatar.frame, index)
                    pcm = SILENT_TICK
                self.video.push(video_frame(image, self.tick))
                for frame in audio_frames(pcm, self.tick):
                    self.audio.push(frame)
                self.tick += 1
                self.stats["ticks"] += 1
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001
            logger.exception("Live session %s: the clock stopped", self.id)
            self._spawn(self.close("clock failed"))

    # --- events and lifetime ------------------------------------------------------------

    async def emit(self, event: dict) -> None:
        if self.reply_to:
            await self.runtime.send(self.reply_to, {"type": "live.event", "session_id": self.id, "event": event})

    def _emit_threadsafe(self, event: dict) -> None:
        if not self.closed:
            asyncio.run_coroutine_threadsafe(self.emit(event), self.loop)

    def _spawn(self, coro) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, reason: str = "bye") -> None:
        if self.closed:
            return
        self.closed = True
        await self.interrupt()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        self.video.stop()
        self.audio.stop()
        if self.pc is not None:
            await self.pc.close()
        self.items.clear()
        await self.runtime.session_closed(self)
        await self.emit({"type": "state", "state": "closed", "reason": reason})
        logger.info("Live session %s of avatar %s closed (%s)", self.id, self.avatar.avatar_id, reason)

    def register(self) -> None:
        registry.session_add(self.id, avatar_id=self.avatar.avatar_id, user_id=self.user_id,
                             channel=self.runtime.channel)
