"""A student's session token as the caller of the live surfaces that accept one (the talk
page, the session socket, the LiveTalking proxy). Every other view keeps the default
authentication, which does not know these tokens: there they are a 401."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission

from tutor_site.exceptions import SessionTokenInvalid
from tutor_site.permissions import IsTutorAdmin

from .models import SessionToken
from .selectors import SESSION_TOKEN_PREFIX, session_token_resolve


class SessionTokenPrincipal:
    """Who calls with a session token: no account (`pk` None, so a conversation it opens has
    no user), allowed one avatar's live sessions (`avatars.selectors.avatar_get_live`)."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = id = None

    def __init__(self, token: SessionToken):
        self.session_token = token

    def __str__(self):
        return f"session token {self.session_token.prefix}…"


class SessionTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token vts_…`, or a `token` field (body or query) holding one."""

    keyword = "Token"

    def authenticate(self, request):
        raw = None
        header = authentication.get_authorization_header(request).split()
        if len(header) == 2 and header[0].decode(errors="replace").lower() == self.keyword.lower():
            raw = header[1].decode(errors="replace")
        if raw is None:
            for source in (request.query_params, getattr(request, "data", None)):
                value = source.get("token") if hasattr(source, "get") else None
                if isinstance(value, str) and value.startswith(SESSION_TOKEN_PREFIX):
                    raw = value
                    break
        if raw is None:
            return None
        try:
            token = session_token_resolve(raw)
        except SessionTokenInvalid as exc:
            raise exceptions.AuthenticationFailed(exc.detail) from None
        return SessionTokenPrincipal(token), token

    def authenticate_header(self, request):
        return self.keyword


class IsTutorAdminOrSessionToken(BasePermission):
    message = IsTutorAdmin.message

    def has_permission(self, request, view):
        return isinstance(request.user, SessionTokenPrincipal) or IsTutorAdmin().has_permission(request, view)


class SessionTokenScheme(OpenApiAuthenticationExtension):
    """The schema's name for it (the LiveTalking proxy accepts it)."""

    target_class = SessionTokenAuthentication
    name = "sessionToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token vts_…`: a student session token (POST /api/avatars/{id}/session-tokens).",
        }
