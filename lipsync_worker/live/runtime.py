"""The live runtime of a lip-sync worker process: an asyncio loop on a background thread.

It owns a channel-layer channel (recorded on the avatars it serves as `serving_channel`)
on which the web process relays signaling, the peer connections of its sessions, and a
heartbeat in Redis by which the web process tells a live worker from a dead one. The
warm-up task runs in the same process and hands it the warmed avatar, so sessions use
the model and assets already in memory.

Each session (session.py) runs its peer, its clock and its renderer's task on this loop,
plus one renderer thread of its own for lip-sync; blocking calls (Redis, decoding, aiortc's
encoding) go to the loop's default executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings

from contracts import live_registry as registry
from contracts.errors import ServiceError, TooManyRequests

from .frames import idle_pictures

logger = logging.getLogger(__name__)

# Retry-After of a session refused for the admin's limit.
SESSION_RETRY_SECONDS = 30


@dataclass(eq=False)
class LiveAvatar:
    avatar_id: int
    name: str
    warm: object  # lipsync_worker.warm_avatars.WarmAvatar
    tts_model: str
    voice: str
    reference_path: str
    reference_text: str


class LiveRuntime:
    def __init__(self, worker_name: str = ""):
        self.name = f"{worker_name or socket.gethostname()} pid {os.getpid()}"
        # The Celery worker's hostname: placement sends starts to its direct queue.
        self.hostname = worker_name
        # What placement reads from the heartbeat (found once, at start: see _capabilities).
        self.device = "cpu"
        self.engines: list[str] = []
        # Told to stop (SIGTERM): no new avatars or sessions; the open ones end at the deadline.
        self.draining = False
        self.drain_deadline = 0.0
        self.channel = ""
        self.loop = asyncio.new_event_loop()
        # aiortc encodes every frame in the loop's default executor: room for all sessions.
        self.loop.set_default_executor(
            ThreadPoolExecutor(max_workers=max(8, 4 * settings.LIVE_MAX_SESSIONS_PER_WORKER), thread_name_prefix="live")
        )
        self.avatars: dict[int, LiveAvatar] = {}
        self.sessions: dict = {}
        self.broadcasts: dict = {}  # broadcast.py: id -> the Broadcast of a host session
        self.started_at = time.time()
        self._ready = threading.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task] = set()
        self._thread = threading.Thread(target=self._run, name="live-runtime", daemon=True)
        self.layer = None

    # --- lifetime (called from the worker's threads) ------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        from .ice import install_host_addresses

        install_host_addresses()
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("The live runtime did not start (is the channel layer's Redis reachable?)")

    def call(self, coro, timeout: float = 30.0):
        """Run a coroutine on the runtime's loop from another thread and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def shutdown(self, reason: str = "worker stopping") -> None:
        """Worker stopping: close every session (with `reason`), drop the heartbeat, release the avatars."""
        if self._stopping or not self._thread.is_alive():
            return
        try:
            self.call(self._close_all(reason), timeout=10)
        except Exception:
            logger.warning("Live sessions did not close cleanly", exc_info=True)
        self._stopping = True
        registry.worker_forget(self.channel)
        self.loop.call_soon_threadsafe(self.loop.stop)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.create_task(self._main())
        self.loop.run_forever()

    async def _main(self) -> None:
        from channels.layers import channel_layers

        # A layer instance of our own: the runtime's loop is the only one that uses it.
        self.layer = channel_layers.make_backend("default")
        self.channel = await self.layer.new_channel("live.")
        self.engines, self.device = await self.loop.run_in_executor(None, _capabilities)
        await self._beat()
        self._ready.set()
        logger.info("Live runtime %s listening on %s", self.name, self.channel)
        self._spawn(self._heartbeat())
        while not self._stopping:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis hiccup: retry, do not die
                logger.warning("Live runtime: receive failed", exc_info=True)
                await asyncio.sleep(1)
                continue
            self._spawn(self._dispatch(message))

    def _spawn(self, coro) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _beat(self) -> None:
        from .signals import serves_live_queue

        facts = {
            "name": self.name,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": self.started_at,
            "sessions": len(self.sessions),
            "avatars": sorted(self.avatars),
            "max_sessions": settings.LIVE_MAX_SESSIONS_PER_WORKER,
            "hostname": self.hostname,
            "device": self.device,
            "engines": self.engines,
            "draining": self.draining,
            "placeable": serves_live_queue(),
        }
        # Only sessions whose reservation is recorded (one being reserved is not refreshed into it).
        sessions = {
            s.id: (s.user_id, s.avatar.avatar_id, s.meter.tutor_id) for s in self.sessions.values() if s.registered
        }
        await self.loop.run_in_executor(
            None, lambda: (registry.worker_beat(self.channel, facts), registry.session_refresh(sessions))
        )

    async def _heartbeat(self) -> None:
        while not self._stopping:
            await asyncio.sleep(settings.LIVE_HEARTBEAT_SECONDS)
            try:
                await self._beat()
                await self.loop.run_in_executor(None, _dead_workers_sweep)
            except Exception:
                logger.warning("Live runtime: heartbeat failed", exc_info=True)

    # --- drain (SIGTERM: see signals.py) -------------------------------------------------

    def drain_begin(self, grace: float | None = None) -> None:
        """From any thread, without waiting (it is called from a signal handler): take
        nothing new, tell the viewers, and let `drain_wait` end their sessions at the end of
        the grace period."""
        grace = settings.LIVE_DRAIN_GRACE_SECONDS if grace is None else grace
        if self._stopping or not self._thread.is_alive():
            return
        if self.draining:  # a second signal: end the sessions now
            self.drain_deadline = min(self.drain_deadline, time.monotonic())
            return
        self.draining = True
        self.drain_deadline = time.monotonic() + grace
        asyncio.run_coroutine_threadsafe(self._drain_announce(grace), self.loop)

    async def _drain_announce(self, grace: float) -> None:
        logger.info("Live runtime %s draining: %d sessions, %.0f s grace", self.name, len(self.sessions), grace)
        with contextlib.suppress(Exception):  # Redis away: the next beat says it
            await self._beat()  # placement and the web see it at once, not at the next beat
        moved = set()
        if grace > 0:  # another worker warms them now: new sessions open there at once
            for avatar_id in list(self.avatars):
                with contextlib.suppress(Exception):
                    if await self.loop.run_in_executor(None, _avatar_move, avatar_id):
                        moved.add(avatar_id)
        for session in list(self.sessions.values()):
            moving = session.avatar.avatar_id in moved
            where = "Reconnect to continue" if moving else "Start the avatar again to continue"
            detail = f"This lip-sync server is shutting down: the session ends in {grace:.0f} s. {where} elsewhere."
            await session.emit({"type": "draining", "detail": detail, "grace_seconds": grace, "moving": moving})

    def drain_wait(self) -> bool:
        """Block (a worker thread) until every session has left or the grace period is over;
        True when they all left by themselves."""
        while self.sessions and time.monotonic() < self.drain_deadline:
            time.sleep(0.2)
        return not self.sessions

    # --- avatars (warm-up and stop come from Celery tasks and the web process) -----------

    def avatar_add(self, avatar, *, reference_path: str, reference_text: str) -> LiveAvatar:
        """Called by the warm-up task (its thread): load engine + assets, keep them for sessions."""
        from ..warm_avatars import warm_avatar_get, warm_avatar_pin

        warm = warm_avatar_get(avatar, live=True)
        warm_avatar_pin(avatar.pk)
        live = LiveAvatar(avatar.pk, avatar.name, warm, avatar.tts_model, avatar.timbre, reference_path, reference_text)
        self.avatars[avatar.pk] = live
        # Make the idle loop's first pictures now rather than on the first viewer's clock.
        pictures = idle_pictures(live)
        for index in range(min(warm.assets.frame_count, 25)):
            pictures.make(index)
        _asr_warm_up(avatar.asr_model)
        self.loop.call_soon_threadsafe(lambda: self._spawn(self._beat()))
        return live

    async def avatar_remove(self, avatar_id: int) -> bool:
        from ..warm_avatars import warm_avatar_pin, warm_avatar_release

        for session in [s for s in self.sessions.values() if s is not None and s.avatar.avatar_id == avatar_id]:
            await session.close("avatar stopped")
        live = self.avatars.pop(avatar_id, None)
        warm_avatar_pin(avatar_id, False)
        await self.loop.run_in_executor(None, warm_avatar_release, avatar_id)
        await self._beat()
        return live is not None

    # --- signaling ----------------------------------------------------------------------

    async def send(self, channel: str, message: dict) -> None:
        try:
            await self.layer.send(channel, message)
        except Exception:  # a viewer that went away must not break the runtime
            logger.debug("Live runtime: could not send to %s", channel, exc_info=True)

    async def _reply(self, message: dict, event: dict) -> None:
        if message.get("reply_to"):
            await self.send(
                message["reply_to"],
                {
                    "type": "live.event",
                    "request_id": message.get("request_id"),
                    "session_id": event.get("session_id"),
                    "event": event,
                },
            )

    async def _dispatch(self, message: dict) -> None:
        kind = message.get("type")
        handler = {
            "live.offer": self._offer,
            "live.say": self._say,
            "live.ask": self._ask,
            "live.interrupt": self._interrupt,
            "live.bye": self._bye,
            "live.query": self._query,
            "live.stop_avatar": self._stop_avatar,
            "live.revoke": self._revoke,
            "live.broadcast": self._broadcast,
            "live.broadcast_join": self._broadcast,
            "live.broadcast_leave": self._broadcast,
        }.get(kind)
        if handler is None:
            logger.warning("Live runtime: unknown message type %r", kind)
            return
        try:
            await handler(message)
        except ServiceError as exc:
            event = {"type": "error", "detail": exc.detail}
            if isinstance(exc, TooManyRequests):  # the web answers it as a 429 with Retry-After
                event.update(status=exc.status_code, retry_after=exc.retry_after)
            await self._reply(message, event)
        except Exception:  # one bad request must not stop the runtime
            logger.exception("Live runtime: %s failed", kind)
            await self._reply(
                message, {"type": "error", "detail": f"The worker could not handle {kind} (the error is in its log)."}
            )

    def _session(self, message: dict):
        session = self.sessions.get(message.get("session_id") or "")
        if session is None:
            raise ServiceError("No such live session on this worker (it was closed); open a new one.")
        return session

    async def _offer(self, message: dict) -> None:
        from .session import LiveSession

        if self.draining:
            raise ServiceError("The worker serving this avatar is shutting down; start the avatar again.")
        live = self.avatars.get(message["avatar_id"])
        if live is None:
            raise ServiceError("This avatar is not started on its worker any more; start it again.")
        if len(self.sessions) >= settings.LIVE_MAX_SESSIONS_PER_WORKER:
            raise ServiceError(
                f"The worker serving this avatar already hosts {len(self.sessions)} live sessions, "
                f"its limit (LIVE_MAX_SESSIONS_PER_WORKER); try again when one has closed."
            )
        session = LiveSession(
            self,
            live,
            user_id=message["user_id"],
            opened_by=message.get("opened_by"),
            reply_to=message.get("events_to"),
            limits=message,
        )
        # Counted here, before any await, so that concurrent offers respect the worker's limit;
        # the admin's limit (all workers) is a reservation in Redis, checked and added at once.
        self.sessions[session.id] = session
        try:
            open_ = await self.loop.run_in_executor(None, session.reserve)
        except BaseException:
            self.sessions.pop(session.id, None)
            with contextlib.suppress(Exception):  # the reservation may have been recorded
                await self.loop.run_in_executor(None, session.unregister)
            raise
        if open_ is not None:
            self.sessions.pop(session.id, None)
            kind, count = open_
            if kind == "tutor":
                raise TooManyRequests(
                    f"This tutor already has {count} live sessions open, its limit (max_live_sessions = "
                    f"{session.meter.tutor_max_sessions}); try again when one has closed.",
                    retry_after=SESSION_RETRY_SECONDS,
                    extra={"limit": "max_live_sessions"},
                )
            raise TooManyRequests(
                f"You already have {count} live sessions open, the limit per admin "
                f"(LIVE_MAX_SESSIONS_PER_ADMIN = {settings.LIVE_MAX_SESSIONS_PER_ADMIN}); close one first.",
                retry_after=SESSION_RETRY_SECONDS,
            )
        if session.closed:  # the avatar was stopped while the place was reserved
            await self.loop.run_in_executor(None, session.unregister)
            raise ServiceError("This avatar was stopped meanwhile; start it again.")
        try:
            sdp = await session.answer(message["sdp"], message.get("sdp_type") or "offer")
        except BaseException:
            await session.close("offer failed")  # releases the reservation
            raise
        await self._reply(message, {"type": "answer", "sdp": sdp, "sdp_type": "answer", "session_id": session.id})
        await self._beat()

    async def _say(self, message: dict) -> None:
        await self._session(message).say(
            message["text"],
            interrupt=bool(message.get("interrupt")),
            tts_model=message.get("tts_model") or "",
            voice=message.get("voice") or "",
        )
        await self._reply(message, {"type": "ok"})

    async def _ask(self, message: dict) -> None:
        await self._session(message).ask(message["text"])
        await self._reply(message, {"type": "ok"})

    async def _interrupt(self, message: dict) -> None:
        await self._session(message).interrupt()
        await self._reply(message, {"type": "ok"})

    async def _bye(self, message: dict) -> None:
        session = self.sessions.get(message.get("session_id") or "")
        if session is not None:
            await session.close("bye")
        await self._reply(message, {"type": "ok"})

    async def _query(self, message: dict) -> None:
        session = self._session(message)
        await self._reply(
            message,
            {
                "type": "status",
                "speaking": session.speaking,
                "connection": session.pc.connectionState if session.pc else "new",
                **session.stats,
            },
        )

    async def _revoke(self, message: dict) -> None:
        """An account lost its access (a share revoked, a login removed): end the sessions it
        opened, of one avatar or all; those opened over a socket have closed already, these
        came through the HTTP proxy."""
        user_id, avatar_id = message.get("user_id"), message.get("avatar_id")
        for session in list(self.sessions.values()):
            if session.opened_by == user_id and avatar_id in (None, session.avatar.avatar_id):
                await session.emit({"type": "error", "detail": "Your access to this avatar ended.", "reason": "access"})
                await session.close("access revoked")

    async def _broadcast(self, message: dict) -> None:
        """Classroom mode (broadcast.py): a host session's broadcast opened, a viewer joining or leaving."""
        from . import broadcast

        handler = {
            "live.broadcast": broadcast.broadcast_open,
            "live.broadcast_join": broadcast.broadcast_join,
            "live.broadcast_leave": broadcast.broadcast_leave,
        }[message["type"]]
        await self._reply(message, await handler(self, message))

    async def _stop_avatar(self, message: dict) -> None:
        await self.avatar_remove(int(message["avatar_id"]))
        await self._reply(message, {"type": "ok"})

    async def session_closed(self, session) -> None:
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
        await self.loop.run_in_executor(None, session.unregister)

    async def _close_all(self, reason: str) -> None:
        for session in list(self.sessions.values()):
            await session.close(reason)


def _capabilities() -> tuple[list[str], str]:
    """The lip-sync engines this worker can run, and its device (cuda:N or cpu)."""
    from ..engines import engine_list

    rows = engine_list()
    device = "cpu"
    if any(row["available"] and row["device"] == "cuda" for row in rows):
        import torch

        device = f"cuda:{torch.cuda.current_device()}"
    return [row["id"] for row in rows if row["available"]], device


def _avatar_move(avatar_id: int) -> str:
    from django.db import close_old_connections

    from avatars.live_services import avatar_live_move

    close_old_connections()  # an executor thread's connection may have broken meanwhile
    return avatar_live_move(avatar_id)


def _dead_workers_sweep() -> None:
    """Avatars of a worker whose heartbeat stopped (killed, its machine gone) go back to
    inactive within a heartbeat or two, not when someone next opens them. One runtime at
    a time does it (a Redis claim per heartbeat period)."""
    from django.db import close_old_connections

    from avatars.live_services import avatar_live_reconcile

    if registry.sweep_claim(settings.LIVE_HEARTBEAT_SECONDS * 0.9):
        close_old_connections()  # an executor thread's connection may have broken meanwhile
        reset = avatar_live_reconcile()
        if reset:
            logger.info("Avatars %s were on a worker that stopped responding: now inactive", reset)


def _asr_warm_up(asr_model: str) -> None:
    """Load the avatar's speech recogniser with the avatar, not on its first student's question."""
    from ..conversation.asr import asr_engine_get

    try:
        engine = asr_engine_get(asr_model)
        if engine.availability()[0]:
            engine.warm_up()
    except Exception:  # the session says why it cannot listen; the avatar still talks
        logger.warning("Could not load the ASR engine %s", asr_model, exc_info=True)


_runtime: LiveRuntime | None = None
_runtime_lock = threading.Lock()


def runtime_get(worker_name: str = "") -> LiveRuntime:
    """This process' runtime, started on first use."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            runtime = LiveRuntime(worker_name)
            runtime.start()
            _runtime = runtime
        return _runtime


def runtime_current() -> LiveRuntime | None:
    return _runtime
