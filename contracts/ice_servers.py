"""The ICE servers a peer gets: the configured STUN servers, plus short-lived TURN
credentials made for it from TURN_SECRET (the TURN REST API convention coturn implements
with `use-auth-secret`: username `<expiry>:<identity>`, password base64(HMAC-SHA1(secret,
username))). No long-lived TURN password ever reaches a browser, and coturn's logs name
who relays (the identity in the username)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

from django.conf import settings


def turn_enabled() -> bool:
    return bool(settings.TURN_URLS and settings.TURN_SECRET)


def turn_credentials(identity: str, *, now: float | None = None, secret: str | None = None) -> tuple[str, str]:
    """(username, password) valid until now + TURN_TTL. `secret` defaults to TURN_SECRET."""
    expires = int((time.time() if now is None else now) + settings.TURN_TTL)
    username = f"{expires}:{identity}"
    key = (settings.TURN_SECRET if secret is None else secret).encode()
    digest = hmac.new(key, username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def viewer_identity(principal) -> str:
    """Who a viewer is, for the TURN username: `token-<id>` for a student's session token,
    `user-<id>` for an account."""
    token = getattr(principal, "session_token", None)
    if token is not None:
        return f"token-{token.pk}"
    return f"user-{principal.pk}"


def ice_servers_grant(identity: str, *, now: float | None = None) -> dict:
    """What a peer is handed: `ice_servers` (RTCIceServer dicts), `expires_at` (ISO 8601,
    when its TURN credentials stop working; None without TURN), `ttl` (seconds, or None)
    and `ice_transport_policy` ("all" or "relay", WEBRTC_ICE_TRANSPORT_POLICY)."""
    now = time.time() if now is None else now
    servers = [dict(server) for server in settings.WEBRTC_ICE_SERVERS]
    expires_at = ttl = None
    if turn_enabled():
        username, credential = turn_credentials(identity, now=now)
        servers.append({"urls": list(settings.TURN_URLS), "username": username, "credential": credential})
        expiry = int(username.split(":", 1)[0])
        expires_at = datetime.fromtimestamp(expiry, tz=UTC).isoformat().replace("+00:00", "Z")
        ttl = settings.TURN_TTL
    return {
        "ice_servers": servers,
        "expires_at": expires_at,
        "ttl": ttl,
        "ice_transport_policy": settings.WEBRTC_ICE_TRANSPORT_POLICY,
    }
