"""WebSocket consumers of the avatars app."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from tutor_site.account_events import session_token_group_name
from tutor_site.channels_auth import AuthWatchMixin, EventsRedisLostMixin, RedisLostMixin
from tutor_site.exceptions import Forbidden, ObjectNotFound, SessionTokenInvalid

from .events import avatar_group_name, avatar_state
from .selectors import avatar_get, avatar_get_for_token, avatar_get_live
from .share_events import AvatarAccessWatchMixin
from .signaling_messages import SignalingMessagesMixin
from .worker_watch import WorkerWatchMixin

# Close codes: 4401 not authenticated, 4404 no such avatar for this user.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


@database_sync_to_async
def _avatar_for(user, avatar_id, need: str):
    try:
        return avatar_get(user, avatar_id, need)
    except (ObjectNotFound, Forbidden):
        return None


@database_sync_to_async
def _state_for(user, avatar_id):
    """The avatar's state read now, off the event loop: the start marker first, then the row
    (the order `avatars.live_services` documents)."""
    from .live_services import avatar_start_pending

    starting = bool(avatar_start_pending(avatar_id))
    try:
        return avatar_state(avatar_get(user, avatar_id), starting=starting)
    except ObjectNotFound:
        return None


class AvatarEventsConsumer(EventsRedisLostMixin, AvatarAccessWatchMixin, AuthWatchMixin, AsyncJsonWebsocketConsumer):
    """WS /ws/avatars/{id}/events/: the avatar's state now, then every change."""

    async def connect(self):
        user = self.scope.get("user")
        subprotocols = self.scope.get("subprotocols") or []
        accept_protocol = next((p for p in subprotocols if p.startswith("bearer.")), None)
        if user is None or not user.is_authenticated or not user.is_staff:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        avatar_id = self.scope["url_route"]["kwargs"]["avatar_id"]
        await self.access_watch_start(user.pk, avatar_id)  # a share revoked from now on closes it
        avatar = await _avatar_for(user, avatar_id, "view")
        if avatar is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = avatar_group_name(avatar.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept(subprotocol=accept_protocol)
        # Read after joining the group: a change made before that is in this state, one made
        # after it comes as an event (read before, a start or a job ending meanwhile was lost).
        state = await _state_for(user, avatar.pk)
        if state is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.send_json({"event": "avatar.state", "avatar": state})
        await self.auth_watch_start()

    async def disconnect(self, code):
        await self.auth_watch_stop()
        await self.access_watch_stop()
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        await self.send_json({"event": "error", "detail": "This channel only sends events."})

    async def auth_closing(self, reason: str) -> None:
        await self.send_json({"event": "error", "detail": f"{reason}: sign in again."})

    async def avatar_event(self, message):
        # Either the avatar's state, or a job of it that finished ({"event", "job"}).
        await self.send_json({key: message[key] for key in ("event", "avatar", "job") if key in message})


# --- Live session signaling ---------------------------------------------------------------

CLOSE_NOT_STARTED = 4409


@database_sync_to_async
def _serving_channel(user, avatar_id):
    """(channel, None) of the worker serving the avatar, or (None, reason)."""
    from tutor_site.exceptions import ServiceError

    from .live_services import live_serving_channel

    try:
        return live_serving_channel(avatar_get_live(user, avatar_id)), None
    except ServiceError as exc:
        return None, exc.detail


@database_sync_to_async
def _offer_message(user, avatar_id, sdp, events_to):
    from .live_services import live_offer_message

    return live_offer_message(user, avatar_get_live(user, avatar_id), sdp, "offer", events_to=events_to)


@database_sync_to_async
def _token_principal(raw: str, avatar_id):
    """(principal, avatar, None) for a student's session token of this avatar, else
    (None, None, close code): 4401 a bad, expired or revoked token, 4404 another avatar's."""
    from .token_auth import SessionTokenPrincipal

    try:
        avatar, token = avatar_get_for_token(raw, avatar_id)
    except SessionTokenInvalid:
        return None, None, CLOSE_UNAUTHENTICATED
    except ObjectNotFound:
        return None, None, CLOSE_NOT_FOUND
    return SessionTokenPrincipal(token), avatar, None


class SignalingConsumer(
    SignalingMessagesMixin,
    WorkerWatchMixin,
    RedisLostMixin,
    AvatarAccessWatchMixin,
    AuthWatchMixin,
    AsyncJsonWebsocketConsumer,
):
    """WS /ws/avatars/{id}/session/: offer/answer, say, ask (a typed question), interrupt and
    bye for one live session, relayed to the worker serving the avatar; the worker's events
    (state, speech, transcripts, answers, errors) come back here."""

    async def connect(self):
        self.session_id = None
        self.worker_channel = None
        self._old_sessions: set[str] = set()
        user = self.scope.get("user")
        subprotocols = self.scope.get("subprotocols") or []
        accept_protocol = next((p for p in subprotocols if p.startswith(("bearer.", "token."))), None)
        self.avatar_id = self.scope["url_route"]["kwargs"]["avatar_id"]
        if self.scope.get("session_token"):  # a student: the token opens this avatar only
            user, avatar, code = await _token_principal(self.scope["session_token"], self.avatar_id)
            if user is None:
                await self.close(code=code)
                return
            token = user.session_token
            self.scope["auth_expires"] = token.expires_at.timestamp()
            self.scope["auth_account_id"] = token.created_by_id  # its creator's login removed: closed
            self._token_group = session_token_group_name(token.pk)
            await self.channel_layer.group_add(self._token_group, self.channel_name)
            # A share of its creator revoked from now on ends it (a token does no more than its creator).
            await self.access_watch_start(token.created_by_id, self.avatar_id)
        else:
            if user is None or not user.is_authenticated or not user.is_staff:
                await self.close(code=CLOSE_UNAUTHENTICATED)
                return
            await self.access_watch_start(user.pk, self.avatar_id)  # a share revoked from now on ends the session
            avatar = await _avatar_for(user, self.avatar_id, "use")
            if avatar is None:
                await self.close(code=CLOSE_NOT_FOUND)
                return
        self.user = user
        await self.accept(subprotocol=accept_protocol)
        await self.auth_watch_start()
        channel, reason = await _serving_channel(user, self.avatar_id)
        if channel is None:
            await self.send_json({"type": "error", "detail": reason})
            await self.close(code=CLOSE_NOT_STARTED)
            return
        state = await database_sync_to_async(avatar_state)(avatar)  # reads the start marker (Redis)
        await self.send_json({"type": "state", "state": "ready", "avatar": state})

    async def auth_closing(self, reason: str) -> None:
        student = getattr(getattr(self, "user", None), "session_token", None) is not None
        advice = "ask your tutor for a new link" if student else "sign in again"
        await self.send_json({"type": "error", "detail": f"{reason}: {advice}."})

    async def session_token_revoked(self, message) -> None:
        await self.send_json({"type": "error", "detail": "This session link was revoked."})
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def disconnect(self, code):
        self.worker_watch_stop()
        await self.auth_watch_stop()
        await self.access_watch_stop()
        group, self._token_group = getattr(self, "_token_group", None), None
        if group is not None:
            await self.channel_layer.group_discard(group, self.channel_name)
        if getattr(self, "session_id", None) and self.worker_channel:
            await self.channel_layer.send(self.worker_channel, {"type": "live.bye", "session_id": self.session_id})

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        content = await self.message_read(text_data)
        if content is None:
            return
        handler = {
            "offer": self._offer,
            "say": self._say,
            "ask": self._ask,
            "interrupt": self._interrupt,
            "bye": self._bye,
            "broadcast": self._broadcast,
        }.get(content["type"])
        if handler is None:
            await self._error(
                f"Unknown message type '{content['type'][:40]}'; use offer, say, ask, interrupt, broadcast or bye."
            )
            return
        from tutor_site.exceptions import ServiceError

        try:
            await handler(content)
        except ServiceError as exc:
            await self._error(exc.detail)

    async def _offer(self, content):
        from contracts.ice_servers import ice_servers_grant, viewer_identity

        from .live_services import live_answer_check, live_request_async

        if self.session_id:
            await self._error("A session is already open on this connection; send bye first.")
            return
        channel, message = await _offer_message(self.user, self.avatar_id, content.get("sdp"), self.channel_name)
        answer = live_answer_check(await live_request_async(channel, message))
        self.session_id, self.worker_channel = answer["session_id"], channel
        self.worker_watch_start(channel)
        # The viewer's servers with fresh credentials, for an ICE restart or the next session.
        grant = ice_servers_grant(viewer_identity(self.user))
        await self.send_json(
            {
                "type": "answer",
                "sdp": answer["sdp"],
                "session_id": answer["session_id"],
                "ice_servers": grant["ice_servers"],
                "expires_at": grant["expires_at"],
            }
        )

    async def _relay(self, message: dict) -> bool:
        if not self.session_id:
            await self._error("No session yet: send an offer first.")
            return False
        await self.channel_layer.send(
            self.worker_channel,
            {**message, "session_id": self.session_id, "reply_to": self.channel_name, "request_id": "ack"},
        )
        return True

    async def _say(self, content):
        from .live_services import live_say_charge, live_text_validate

        if not self.session_id:
            await self._error("No session yet: send an offer first.")
            return
        text = live_text_validate(content.get("text"), content.get("tts_model"), content.get("voice"))
        await database_sync_to_async(live_say_charge)(self.user, self.avatar_id, text)  # TTS_MAX_CHARS_PER_MINUTE
        await self._relay(
            {
                "type": "live.say",
                "text": text,
                "interrupt": bool(content.get("interrupt")),
                "tts_model": content.get("tts_model") or "",
                "voice": content.get("voice") or "",
            }
        )

    async def _ask(self, content):
        from .live_services import live_question_charge, live_question_validate

        if not self.session_id:
            await self._error("No session yet: send an offer first.")
            return
        text = live_question_validate(content.get("text"))
        await database_sync_to_async(live_question_charge)(self.user, self.avatar_id, text)
        await self._relay({"type": "live.ask", "text": text})

    async def _interrupt(self, content):
        await self._relay({"type": "live.interrupt"})

    async def _broadcast(self, content):
        """Classroom mode: open this session's broadcast and get a link for its viewers."""
        from .broadcast_services import broadcast_open

        if not self.session_id:
            await self._error("No session yet: send an offer first.")
            return
        host = dict(self.scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        await self.send_json(
            await broadcast_open(
                channel=self.worker_channel,
                session_id=self.session_id,
                avatar_id=int(self.avatar_id),
                host=host,
                secure=self.scope.get("scheme") == "wss",
            )
        )

    async def _bye(self, content):
        if await self._relay({"type": "live.bye"}):
            self.worker_watch_stop()
            self._old_sessions.add(self.session_id)
            self.session_id = None

    async def worker_lost(self, detail: str) -> None:
        session_id, self.session_id = self.session_id, None
        self._old_sessions.add(session_id)
        await self.send_json({"type": "error", "detail": detail})
        await self.send_json({"type": "state", "state": "closed", "reason": "worker lost", "session_id": session_id})

    async def live_event(self, message):
        event = message.get("event") or {}
        if event.get("type") == "ok":
            return  # acknowledgements of say / interrupt / bye
        if message.get("session_id") in self._old_sessions and event.get("type") != "state":
            return
        closed = event.get("type") == "state" and event.get("state") == "closed"
        if closed and message.get("session_id") == self.session_id:
            self.worker_watch_stop()  # ended by its worker (drained, limits): nothing left to watch
        await self.send_json(event)
