"""WS /ws/broadcasts/{broadcast_id}/?token=<viewer token>: a viewer of a classroom broadcast.

The same offer/answer exchange as a live session's socket; then events only: the host's
speech (`speaking_started` with its text, `word`, `speaking_ended`), `viewers` {count},
`state`, `error` and `ended` (the host's session closed; the socket closes after it).
Viewers watch and listen: `say`, `ask` and `interrupt` are refused with the reason.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from tutor_site.channels_auth import RedisLostMixin
from tutor_site.exceptions import ObjectNotFound, ServiceError, SessionTokenInvalid

from .broadcast_services import broadcast_group_name, broadcast_ice_grant, broadcast_join, broadcast_viewer_resolve
from .signaling_messages import SignalingMessagesMixin
from .worker_watch import WorkerWatchMixin

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_ENDED = 1000
HOST_ONLY = "Only the host of this broadcast can {action}; viewers watch and listen."


class BroadcastViewerConsumer(SignalingMessagesMixin, WorkerWatchMixin, RedisLostMixin, AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.viewer_id = None
        self.record = None
        self.group = None
        self.broadcast_id = self.scope["url_route"]["kwargs"]["broadcast_id"]
        query = parse_qs((self.scope.get("query_string") or b"").decode())
        token = (query.get("token") or [""])[0]
        try:
            self.record = await database_sync_to_async(broadcast_viewer_resolve)(self.broadcast_id, token)
        except (ObjectNotFound, SessionTokenInvalid) as exc:
            # Accepted only to say why: a browser sees nothing of a refused handshake.
            await self.accept()
            await self.send_json({"type": "error", "detail": exc.detail})
            await self.close(code=CLOSE_NOT_FOUND if isinstance(exc, ObjectNotFound) else CLOSE_UNAUTHENTICATED)
            return
        # Before accepting: the events of the broadcast from now on reach this socket.
        self.group = broadcast_group_name(self.broadcast_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "state", "state": "ready", "broadcast_id": self.broadcast_id})

    async def disconnect(self, code):
        self.worker_watch_stop()
        group, self.group = getattr(self, "group", None), None
        if group is not None:
            await self.channel_layer.group_discard(group, self.channel_name)
        await self._leave()

    async def _leave(self) -> None:
        viewer_id, self.viewer_id = getattr(self, "viewer_id", None), None
        if viewer_id and self.record:
            await self.channel_layer.send(
                self.record["channel"],
                {"type": "live.broadcast_leave", "broadcast_id": self.broadcast_id, "viewer_id": viewer_id},
            )

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        content = await self.message_read(text_data)
        if content is None:
            return
        kind = content["type"]
        if kind in ("say", "ask", "interrupt", "broadcast"):
            action = {"say": "make the avatar say something", "ask": "ask questions"}.get(kind, f"{kind}")
            await self.send_json({"type": "error", "detail": HOST_ONLY.format(action=action), "reason": "viewer"})
            return
        if kind == "offer":
            await self._offer(content)
        elif kind == "bye":
            await self._leave()
            await self.send_json({"type": "state", "state": "closed", "reason": "bye"})
        else:
            await self._error(f"Unknown message type '{kind[:40]}'; a viewer sends offer or bye.")

    async def _offer(self, content) -> None:
        if self.viewer_id:
            await self._error("Already watching on this connection; send bye first.")
            return
        try:
            answer = await broadcast_join(self.record, self.broadcast_id, content.get("sdp"), self.channel_name)
        except ServiceError as exc:
            await self._error(exc.detail)
            return
        self.viewer_id = answer["viewer_id"]
        self.worker_watch_start(self.record["channel"])  # the host's worker killed: told below
        # Fresh TURN credentials, as a session's answer has: for an ICE restart or a reconnection.
        grant = broadcast_ice_grant(self.broadcast_id)
        await self.send_json(
            {
                "type": "answer",
                "sdp": answer["sdp"],
                "viewer_id": self.viewer_id,
                "viewers": answer.get("viewers"),
                "ice_servers": grant["ice_servers"],
                "expires_at": grant["expires_at"],
            }
        )

    async def worker_lost(self, detail: str) -> None:
        self.viewer_id = None
        await self.send_json({"type": "error", "detail": detail})
        await self.send_json({"type": "ended", "reason": "worker lost"})
        await self.close(code=CLOSE_ENDED)

    async def live_event(self, message):
        event = message.get("event") or {}
        if event.get("type") == "ok":
            return
        await self.send_json(event)
        if event.get("type") == "ended":
            self.viewer_id = None  # the worker closed it already
            await self.close(code=CLOSE_ENDED)
