"""WebSocket authentication: a JWT (subprotocol `bearer.<token>` or `?token=`) or the
admin session cookie, or a student's session token (subprotocol `token.vts_…` or
`?token=vts_…`, put in scope["session_token"] for the session consumer to check), and an
Origin check (TALK_EMBED_ORIGINS too, for the session socket of a session token);
`AuthWatchMixin` ends sockets whose token expired or whose account was disabled;
`RedisLostMixin` tells the client why before a socket closes because Redis (the channel layer) went away."""

import asyncio
import contextlib
import re
import time
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser


@database_sync_to_async
def _user_from_jwt(raw: str):
    """(user, expiry time) of a valid token of an active staff account; (None, None) otherwise."""
    from rest_framework_simplejwt.authentication import JWTAuthentication
    from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError

    auth = JWTAuthentication()
    try:
        token = auth.get_validated_token(raw)
        user = auth.get_user(token)
    except (InvalidToken, TokenError, AuthenticationFailed):
        return None, None
    if not (user.is_active and user.is_staff):
        return None, None
    return user, float(token["exp"])


@database_sync_to_async
def _still_allowed(user_id) -> bool:
    from tutors.models import User

    return User.objects.filter(pk=user_id, is_active=True, is_staff=True).exists()


@database_sync_to_async
def _token_still_valid(raw: str) -> bool:
    from avatars.selectors import session_token_resolve
    from contracts.errors import SessionTokenInvalid

    try:
        session_token_resolve(raw)
    except SessionTokenInvalid:
        return False
    return True


class AuthWatchMixin:
    """For consumers: the socket is closed (4401) when its token expires or its account is
    deactivated, checked at the expiry and every WEBSOCKET_AUTH_RECHECK_SECONDS."""

    async def auth_watch_start(self) -> None:
        from .account_events import account_group_name

        self._auth_watch = asyncio.get_running_loop().create_task(self._auth_watch_run())
        # A session token's socket follows its creator's login.
        user_id = self.scope.get("auth_account_id") or getattr(self.scope.get("user"), "pk", None)
        if user_id is not None:  # a login removed closes its sockets at once (`account_disabled`)
            self._account_group = account_group_name(user_id)
            await self.channel_layer.group_add(self._account_group, self.channel_name)

    async def auth_watch_stop(self) -> None:
        task = getattr(self, "_auth_watch", None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        group, self._account_group = getattr(self, "_account_group", None), None
        if group is not None:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def account_disabled(self, message) -> None:
        await self.auth_closing("Your account was disabled")
        await self.close(code=CLOSE_AUTH_ENDED)

    async def _auth_watch_run(self) -> None:
        user = self.scope.get("user")
        expires = self.scope.get("auth_expires")
        while True:
            wait = settings.WEBSOCKET_AUTH_RECHECK_SECONDS
            if expires is not None:
                wait = min(wait, max(0.0, expires - time.time()))
            await asyncio.sleep(wait)
            expired = expires is not None and time.time() >= expires
            token = self.scope.get("session_token")
            if token:
                if expired or not await _token_still_valid(token):
                    await self.auth_closing("Your session link expired or was revoked")
                    await self.close(code=CLOSE_AUTH_ENDED)
                    return
                continue
            if expired or not await _still_allowed(getattr(user, "pk", None)):
                reason = "Your sign-in expired" if expired else "Your account was disabled"
                await self.auth_closing(reason)
                await self.close(code=CLOSE_AUTH_ENDED)
                return

    async def auth_closing(self, reason: str) -> None:
        """Hook: tell the client why before the socket closes."""


CLOSE_AUTH_ENDED = 4401
CLOSE_SERVER_ERROR = 1011
REDIS_LOST = "The server lost its connection to Redis; reconnecting…"


class RedisLostMixin:
    """For JSON consumers: when the channel layer (or a Redis read in a handler) fails, the
    consumer ends and the server closes the socket (1011); the client now gets
    `{<error_key>: "error", "detail": REDIS_LOST}` first, and the consumer's `disconnect`
    runs (its watchers stop), as on a normal close."""

    error_key = "type"  # the signaling protocol's; the events socket's is "event"

    async def __call__(self, scope, receive, send):
        from contracts.errors import outage_kind

        try:
            await super().__call__(scope, receive, send)
        except Exception as exc:
            if outage_kind(exc) == "queue":
                await self._redis_lost()
            # Raised on: daphne closes with 1011 (a consumer may not send 1011 itself: the
            # WebSocket library allows applications 1000 and 3000-4999 only).
            raise

    async def accept(self, subprotocol=None, *args, **kwargs):
        self._accepted = True
        await super().accept(subprotocol, *args, **kwargs)

    async def _redis_lost(self) -> None:
        with contextlib.suppress(Exception):  # the client may be gone already
            user = self.scope.get("user")
            if not getattr(self, "_accepted", False) and user is not None and user.is_authenticated:
                # Failed while connecting: accept (with the client's bearer subprotocol, or a
                # browser drops the handshake) only to say why.
                offered = self.scope.get("subprotocols") or []
                await self.accept(next((p for p in offered if p.startswith("bearer.")), None))
            if getattr(self, "_accepted", False):
                await self.send_json({self.error_key: "error", "detail": REDIS_LOST})
        with contextlib.suppress(Exception):  # its channel-layer calls may fail too
            await asyncio.wait_for(self.disconnect(CLOSE_SERVER_ERROR), 5)


class EventsRedisLostMixin(RedisLostMixin):
    error_key = "event"


SESSION_TOKEN_PREFIX = "vts_"  # avatars.selectors.SESSION_TOKEN_PREFIX


def _jwt_from_scope(scope) -> str | None:
    for protocol in scope.get("subprotocols") or []:
        if protocol.startswith("bearer."):
            return protocol[len("bearer.") :]
    query = parse_qs((scope.get("query_string") or b"").decode())
    return (query.get("token") or [None])[0]


def _session_token_from_scope(scope) -> str | None:
    """A student's session token: subprotocol `token.vts_…`, or `?token=vts_…`."""
    for protocol in scope.get("subprotocols") or []:
        if protocol.startswith("token."):
            return protocol[len("token.") :]
    raw = _jwt_from_scope(scope)
    return raw if raw and raw.startswith(SESSION_TOKEN_PREFIX) else None


class JWTAuthMiddleware:
    """Puts the JWT's user in scope["user"] when a token is given; otherwise the session
    user (from AuthMiddlewareStack) stays. An invalid token means anonymous."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        session_token = _session_token_from_scope(scope)
        if session_token is not None:  # not an account: only the session consumer takes it
            scope = {**scope, "user": AnonymousUser(), "session_token": session_token}
            return await self.app(scope, receive, send)
        token = _jwt_from_scope(scope)
        if token is not None:
            scope = dict(scope)
            user, expires = await _user_from_jwt(token)
            scope["user"], scope["auth_expires"] = user or AnonymousUser(), expires
        return await self.app(scope, receive, send)


def _allowed_origins() -> list[str]:
    origins = list(settings.WEBSOCKET_ALLOWED_ORIGINS) + list(settings.CORS_ALLOWED_ORIGINS)
    for host in settings.ALLOWED_HOSTS:
        origins.append(host if host != "*" else "*")
    return origins


class OptionalOriginValidator(OriginValidator):
    """Browsers always send Origin and must match; non-browser clients (aiortc, scripts)
    send none and authenticate with a token."""

    def valid_origin(self, parsed_origin):
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


class TalkEmbedOrigins:
    """The session socket of a session token from a TALK_EMBED_ORIGINS page (the talk page
    in a school's iframe) skips the Origin check; everything else goes through it."""

    SESSION_PATH = re.compile(r"^/ws/avatars/\d+/session/$")

    def __init__(self, checked, unchecked):
        self.checked, self.unchecked = checked, unchecked

    async def __call__(self, scope, receive, send):
        origin = dict(scope.get("headers") or []).get(b"origin", b"").decode("latin-1").rstrip("/")
        embed = {o.rstrip("/") for o in settings.TALK_EMBED_ORIGINS}
        if (
            origin
            and origin in embed
            and self.SESSION_PATH.match(scope.get("path") or "")
            and _session_token_from_scope(scope)
        ):
            return await self.unchecked(scope, receive, send)
        return await self.checked(scope, receive, send)


def websocket_stack(inner):
    stack = AuthMiddlewareStack(JWTAuthMiddleware(inner))
    return TalkEmbedOrigins(OptionalOriginValidator(stack, _allowed_origins()), stack)
