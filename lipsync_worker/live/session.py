"""One viewer's live session: a peer, a renderer and a clock, tied together.

- `Peer` (peer.py, event loop): the aiortc RTCPeerConnection, the video and audio tracks it
  sends, the SDP answer and the connection-state watchdog.
- `Renderer` (renderer.py): one per session, for all of its utterances. A task on the event
  loop takes the texts to say in order and streams their sentences from the tts worker
  (Redis calls in the loop's executor, so an interrupt never waits for them); the session's
  one renderer thread lip-syncs each sentence with the avatar's warmed engine (shared by
  every session of the avatar) and puts the ticks into the FrameQueue.
- `Clock` (clock.py, event loop): every 40 ms shows the next rendered tick, its frame with
  its 640 audio samples, or the avatar's idle loop with silence, and says when speech starts,
  each word, and when it ends.
- Between renderer thread and clock: a bounded FrameQueue (frames.py, MAX_AHEAD ticks). The
  renderer blocks while it is full; the clock never waits. They share nothing else but the
  utterances' cancel events.

An interrupt cancels the utterance being rendered (and its TTS stream) and those waiting,
drains the FrameQueue (which frees a blocked renderer thread), so the next tick is idle and
a text sent right after starts at once. Everything here but the renderer thread's work runs
on the runtime's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque

from django.conf import settings

from contracts import live_registry as registry

from .clock import Clock
from .dialogue import Dialogue
from .frames import MAX_AHEAD, FrameQueue, Utterance
from .metering import SessionMeter
from .peer import Peer
from .renderer import Renderer

logger = logging.getLogger(__name__)


class LiveSession:
    """Ties one viewer's peer, renderer and clock together; owns the session's identity, its
    events to the viewer, and its lifetime (interrupt, close, the registry record)."""

    def __init__(
        self,
        runtime,
        avatar,
        *,
        user_id: int,
        reply_to: str | None,
        opened_by: int | None = None,
        limits: dict | None = None,
    ):
        self.runtime = runtime
        self.avatar = avatar  # runtime.LiveAvatar
        self.id = uuid.uuid4().hex
        self.user_id = user_id  # whose limits the session counts against (the avatar's admin)
        self.opened_by = opened_by  # who opened it (its conversation is theirs)
        # The per-tutor limits and the student session token it was opened with (the web's
        # `live_offer_message`): whose minutes it uses, when it must end; its usage records.
        self.meter = SessionMeter(self, limits)
        self.reply_to = reply_to
        self.loop = asyncio.get_running_loop()
        self.closed = False
        self.registered = False  # the reservation in the live registry is recorded
        self._tasks: set[asyncio.Task] = set()
        self._outbox: deque[tuple[dict, asyncio.Future]] = deque()  # events not sent yet (_enqueue)
        self._sender: asyncio.Task | None = None
        self.frames = FrameQueue(MAX_AHEAD)
        # Others that see each tick shown (`tick(picture, pcm, tick)`) and each event sent
        # (`event(event)`): a broadcast of this session (broadcast.py).
        self.listeners: list = []
        self.dialogue = Dialogue(self)
        self.peer = Peer(
            on_state=self._on_connection_state,
            on_connect_timeout=self._on_connect_timeout,
            on_microphone=self.dialogue.hear,
        )
        self.clock = Clock(
            avatar,
            self.frames,
            show=self._show,
            report=self.emit_soon,
            on_failure=lambda: self.spawn(self.close("clock failed")),
            name=self.id[:6],
        )
        self.renderer = Renderer(
            avatar, self.frames, first_step=self.clock.speech_start_step, report=self.emit_soon, name=self.id[:6]
        )

    @property
    def pc(self):
        return self.peer.pc

    @property
    def stats(self) -> dict:
        return self.clock.stats

    @property
    def speaking(self) -> bool:
        return self.clock.playing is not None or self.renderer.busy

    # --- signaling ------------------------------------------------------------------

    async def answer(self, sdp: str, sdp_type: str = "offer") -> str:
        # Before the peer: the microphone track arrives while the offer is applied.
        await self.dialogue.open()
        answer = await self.peer.answer(sdp, sdp_type)
        if not self.closed:
            self.clock.start()
            self.renderer.start()
            if settings.LIVE_MAX_SESSION_SECONDS > 0:
                self.spawn(self._end_at_max_length(settings.LIVE_MAX_SESSION_SECONDS))
            self.meter.opened()
        return answer

    async def _end_at_max_length(self, seconds: float) -> None:
        """LIVE_MAX_SESSION_SECONDS after the answer: say why, then close."""
        await asyncio.sleep(seconds)
        if self.closed:
            return
        await self.emit(
            {
                "type": "error",
                "detail": f"This live session reached its maximum length of {seconds:g} s "
                "(LIVE_MAX_SESSION_SECONDS) and was closed; open a new session to go on.",
                "reason": "max_length",
            }
        )
        await self.close("maximum length reached")

    async def _on_connection_state(self, state: str) -> None:
        if self.closed:
            return  # closing: its own "closed" state, with the reason, is the last word
        await self.emit({"type": "state", "state": state})
        if state == "connected":
            self.spawn(self.dialogue.greet())
        if state in ("failed", "closed"):
            await self.close(f"connection {state}")

    async def _on_connect_timeout(self) -> None:
        await self.emit({"type": "error", "detail": "The WebRTC connection was not established in time."})
        await self.close("connect timeout")

    # --- speech ---------------------------------------------------------------------

    async def say(
        self, text: str, *, interrupt: bool = False, tts_model: str = "", voice: str = "", limited: bool = True
    ) -> Utterance | None:
        """Queue `text` to be spoken; the utterance, or None when refused. `limited`: at most
        LIVE_MAX_PENDING_SAYS texts wait (answers are bounded by their responder instead)."""
        if interrupt:
            await self.interrupt()
        if self.closed:
            return None
        waiting = self.renderer.waiting
        if limited and waiting >= settings.LIVE_MAX_PENDING_SAYS:
            await self.emit(
                {"type": "error", "detail": (f"{waiting} texts are already waiting to be spoken; interrupt or wait.")}
            )
            return None
        utterance = Utterance(text, tts_model or self.avatar.tts_model, voice or self.avatar.voice)
        self.renderer.add(utterance)
        return utterance

    async def ask(self, text: str) -> None:
        """A typed question: answered like a spoken one."""
        await self.dialogue.ask(text)

    async def interrupt(self) -> None:
        self.renderer.cancel()
        playing = self.clock.drop_speech()
        self.frames.drain()
        if playing is not None:
            await self.emit({"type": "speaking_ended", "utterance": playing.id, "interrupted": True})

    # --- events and lifetime ------------------------------------------------------------

    def _show(self, picture, pcm, tick: int) -> None:
        self.peer.show(picture, pcm, tick)
        for listener in self.listeners:
            listener.tick(picture, pcm, tick)

    async def emit(self, event: dict) -> None:
        """Send `event` to the viewer after every event emitted before it; returns once sent."""
        await self._enqueue(event)

    def emit_soon(self, event: dict) -> None:
        """From the clock, the renderer task and the dialogue (event loop): send without waiting."""
        if self.closed:
            return
        if event.get("type") == "speaking_started":
            self.dialogue.on_speaking_started(event["utterance"])
        elif event.get("type") == "speaking_ended" and not event.get("interrupted"):
            self.dialogue.on_speaking_ended(event["utterance"])
        self._enqueue(event)

    def _enqueue(self, event: dict) -> asyncio.Future:
        """Events go out one at a time, in the order they were emitted (a send awaits the
        channel layer): the viewer gets an utterance's speaking_started before its
        speaking_ended, and that before the next one's speaking_started, words in order."""
        self.meter.event(event)
        for listener in self.listeners:
            listener.event(event)
        sent = self.loop.create_future()
        self._outbox.append((event, sent))
        if self._sender is None or self._sender.done():
            # Not one of `_tasks`: what was emitted before close() is still sent.
            self._sender = self.loop.create_task(self._send_outbox())
        return sent

    async def _send_outbox(self) -> None:
        try:
            while self._outbox:
                event, sent = self._outbox[0]
                if self.reply_to:
                    message = {"type": "live.event", "session_id": self.id, "event": event}
                    await self.runtime.send(self.reply_to, message)
                self._outbox.popleft()
                sent.set_result(None)
        finally:  # cancelled (the loop ends): nobody waits for what was not sent
            while self._outbox:
                _event, sent = self._outbox.popleft()
                if not sent.done():
                    sent.cancel()

    def spawn(self, coro) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, reason: str = "bye") -> None:
        if self.closed:
            return
        self.closed = True
        await self.dialogue.close()  # stops listening, records what was said
        await self.interrupt()
        self.renderer.close()
        self.clock.stop()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        await self.peer.close()
        self.frames.drain()
        await self.meter.closed(reason)
        await self.runtime.session_closed(self)
        await self.emit({"type": "state", "state": "closed", "reason": reason})
        logger.info("Live session %s of avatar %s closed (%s)", self.id, self.avatar.avatar_id, reason)

    def reserve(self) -> tuple[str, int] | None:
        """Record the session if its admin is under LIVE_MAX_SESSIONS_PER_ADMIN and its tutor
        under max_live_sessions (checked and added in one step, across workers): None when
        recorded, else ("admin" or "tutor", how many are open)."""
        refused = registry.session_reserve_checked(
            self.id,
            avatar_id=self.avatar.avatar_id,
            user_id=self.user_id,
            channel=self.runtime.channel,
            limit=settings.LIVE_MAX_SESSIONS_PER_ADMIN,
            tutor_id=self.meter.tutor_id,
            tutor_limit=self.meter.tutor_max_sessions,
        )
        self.registered = refused is None
        return refused

    def unregister(self) -> None:
        """Release the reservation (the session closed or its offer failed)."""
        self.registered = False
        registry.session_remove(self.id, self.user_id, self.avatar.avatar_id, self.meter.tutor_id)
