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
import contextlib
import logging
import time
import uuid

from django.conf import settings
from django.db import close_old_connections

from contracts import live_registry as registry

from .clock import Clock
from .dialogue import Dialogue
from .frames import MAX_AHEAD, FrameQueue, Utterance
from .peer import Peer
from .renderer import Renderer

logger = logging.getLogger(__name__)

LIMIT_NOTICE = "This session has reached its time limit. Goodbye."
# `error` events that end a session by a rule (limits, token, access), not a failure.
SESSION_ENDS_NOT_ERRORS = ("limit", "max_length", "token", "access")


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
        # `live_offer_message`): whose minutes it uses, and when it must end.
        limits = limits or {}
        self.tutor_id = limits.get("tutor_id")
        self.tutor_max_sessions = int(limits.get("tutor_max_sessions") or 0)
        self.tutor_live_seconds = float(limits.get("tutor_live_seconds") or 0)
        self.token_id = limits.get("token_id")
        self.token_max_seconds = float(limits.get("token_max_seconds") or 0)
        self.token_expires_at = limits.get("token_expires_at")
        self.reply_to = reply_to
        self.loop = asyncio.get_running_loop()
        self.closed = False
        self.registered = False  # the reservation in the live registry is recorded
        self.opened_at: float | None = None  # time.monotonic() of the answer (usage: its duration)
        self._speaking_since: dict[int, float] = {}  # utterance id -> its first frame
        self._tasks: set[asyncio.Task] = set()
        self.frames = FrameQueue(MAX_AHEAD)
        self.dialogue = Dialogue(self)
        self.peer = Peer(
            on_state=self._on_connection_state,
            on_connect_timeout=self._on_connect_timeout,
            on_microphone=self.dialogue.hear,
        )
        self.clock = Clock(
            avatar,
            self.frames,
            show=self.peer.show,
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
            if self.tutor_id is not None or self.token_id is not None:
                self.spawn(self._account_usage())
            if self.token_id is not None:
                self.spawn(self._record_token())
            self.opened_at = time.monotonic()
            self.usage_soon("usage_session_opened", self.avatar.avatar_id, session_id=self.id, **self.usage_viewer)
        return answer

    # --- usage (analytics.services, on the loop's executor: the clock never waits) ---------

    @property
    def usage_viewer(self) -> dict:
        return {"opened_by": self.opened_by, "token_id": self.token_id}

    def usage_soon(self, name: str, *args, **kwargs):
        """Record usage with `analytics.services.<name>` on an executor thread; the future
        (awaited only at close). It never raises: usage is not worth failing a session."""
        from analytics import services as usage_services

        record = getattr(usage_services, name)

        def _record():
            try:
                close_old_connections()
                record(*args, **kwargs)
            except Exception:
                logger.warning("Live session %s: usage %s not recorded", self.id, name, exc_info=True)

        try:
            return self.loop.run_in_executor(None, _record)
        except RuntimeError:  # the executor is shut down (the worker is stopping)
            return None

    def _usage_speaking(self, event: dict) -> None:
        """Seconds each utterance was seen speaking, from its first frame to its last."""
        if event.get("type") == "speaking_started":
            self._speaking_since[event["utterance"]] = time.monotonic()
        elif event.get("type") == "speaking_ended":
            since = self._speaking_since.pop(event["utterance"], None)
            if since is not None:
                self.usage_soon(
                    "usage_utterance",
                    self.avatar.avatar_id,
                    **self.usage_viewer,
                    seconds=time.monotonic() - since,
                    interrupted=bool(event.get("interrupted")),
                )

    async def _record_token(self) -> None:
        """The conversation was opened with a session token: say which (its user is empty)."""
        from conversations.services import conversation_session_token_set

        conversation_id = getattr(self.dialogue, "conversation_id", None)
        if conversation_id is not None:
            await self.loop.run_in_executor(None, conversation_session_token_set, conversation_id, self.token_id)

    async def _account_usage(self) -> None:
        """Every LIVE_USAGE_ACCOUNT_SECONDS: add the time since the last count to the tutor's
        month and the token (contracts.usage), then end the session with a spoken notice if
        it reached the tutor's monthly minutes or the token's max_minutes, or the token
        expired or was revoked."""
        from contracts import usage

        last = time.monotonic()
        while not self.closed:
            await asyncio.sleep(max(0.05, settings.LIVE_USAGE_ACCOUNT_SECONDS))
            now = time.monotonic()
            seconds, last = now - last, now
            try:
                tutor_total, token_total, revoked = await self.loop.run_in_executor(
                    None, usage.live_seconds_add, self.tutor_id, self.token_id, seconds
                )
            except Exception:  # Redis hiccup: counted at the next try
                logger.warning("Live session %s: usage not counted", self.id, exc_info=True)
                last -= seconds
                continue
            if self.closed:
                return
            if revoked or (self.token_expires_at and time.time() >= self.token_expires_at):
                await self.emit(
                    {"type": "error", "detail": "This session link expired or was revoked.", "reason": "token"}
                )
                await self.close("session token ended")
                return
            if self.tutor_live_seconds and tutor_total >= self.tutor_live_seconds:
                minutes = self.tutor_live_seconds / 60
                detail = (
                    f"The tutor's live minutes for this month ({minutes:g}, monthly_live_minutes) are used up; "
                    "they reset on the 1st of next month (UTC)."
                )
            elif self.token_max_seconds and token_total >= self.token_max_seconds:
                minutes = self.token_max_seconds / 60
                detail = f"This session link's {minutes:g} live minutes (max_minutes) are used up."
            else:
                continue
            await self._end_for_limit(detail)
            return

    async def _end_for_limit(self, detail: str) -> None:
        """Say why (an `error` event with reason "limit", and out loud), then close."""
        await self.emit({"type": "error", "detail": detail, "reason": "limit"})
        await self.say(LIMIT_NOTICE, interrupt=True, limited=False)
        waited = 0.0
        # Until the notice is spoken (at most 20 s: a TTS failure must not keep the session).
        while not self.closed and self.speaking and waited < 20:
            await asyncio.sleep(0.1)
            waited += 0.1
        await self.close("limit reached")

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
            event = {"type": "speaking_ended", "utterance": playing.id, "interrupted": True}
            self._usage_speaking(event)
            await self.emit(event)

    # --- events and lifetime ------------------------------------------------------------

    async def emit(self, event: dict) -> None:
        if event.get("type") == "error" and event.get("reason") not in SESSION_ENDS_NOT_ERRORS:
            kind = f"session_{event.get('reason') or 'error'}"
            detail = str(event.get("detail") or "")
            self.usage_soon("usage_session_error", self.avatar.avatar_id, kind, **self.usage_viewer, detail=detail)
        if self.reply_to:
            await self.runtime.send(self.reply_to, {"type": "live.event", "session_id": self.id, "event": event})

    def emit_soon(self, event: dict) -> None:
        """From the clock, the renderer task and the dialogue (event loop): send without waiting."""
        if self.closed:
            return
        self._usage_speaking(event)
        if event.get("type") == "speaking_started":
            self.dialogue.on_speaking_started(event["utterance"])
        elif event.get("type") == "speaking_ended" and not event.get("interrupted"):
            self.dialogue.on_speaking_ended(event["utterance"])
        self.spawn(self.emit(event))

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
        if self.opened_at is not None:
            recorded = self.usage_soon(
                "usage_session_closed", self.avatar.avatar_id, session_id=self.id, **self.usage_viewer,
                seconds=time.monotonic() - self.opened_at, reason=reason,
            )  # fmt: skip
            if recorded is not None:
                with contextlib.suppress(Exception):
                    await recorded
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
            tutor_id=self.tutor_id,
            tutor_limit=self.tutor_max_sessions,
        )
        self.registered = refused is None
        return refused

    def unregister(self) -> None:
        """Release the reservation (the session closed or its offer failed)."""
        self.registered = False
        registry.session_remove(self.id, self.user_id, self.avatar.avatar_id, self.tutor_id)
