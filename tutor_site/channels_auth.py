"""WebSocket authentication: a JWT (subprotocol `bearer.<token>` or `?token=`) or the
admin session cookie, and an Origin check."""

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser


@database_sync_to_async
def _user_from_jwt(raw: str):
    from rest_framework_simplejwt.authentication import JWTAuthentication
    from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError

    auth = JWTAuthentication()
    try:
        user = auth.get_user(auth.get_validated_token(raw))
    except (InvalidToken, TokenError, AuthenticationFailed):
        return None
    return user if user.is_active and user.is_staff else None


def _jwt_from_scope(scope) -> str | None:
    for protocol in scope.get("subprotocols") or []:
        if protocol.startswith("bearer."):
            return protocol[len("bearer.") :]
    query = parse_qs((scope.get("query_string") or b"").decode())
    return (query.get("token") or [None])[0]


class JWTAuthMiddleware:
    """Puts the JWT's user in scope["user"] when a token is given; otherwise the session
    user (from AuthMiddlewareStack) stays. An invalid token means anonymous."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        token = _jwt_from_scope(scope)
        if token is not None:
            scope = dict(scope)
            scope["user"] = await _user_from_jwt(token) or AnonymousUser()
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


def websocket_stack(inner):
    return OptionalOriginValidator(AuthMiddlewareStack(JWTAuthMiddleware(inner)), _allowed_origins())
