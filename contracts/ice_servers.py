"""The ICE servers a peer gets: the configured STUN/TURN servers, plus short-lived TURN
credentials made for it from TURN_SECRET (the TURN REST API convention coturn implements
with `use-auth-secret`: username `<expiry>:<id>`, password base64(HMAC-SHA1(secret,
username))). No long-lived TURN password ever reaches a browser."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from django.conf import settings


def turn_credentials(identity: str, *, now: float | None = None) -> tuple[str, str]:
    expires = int((time.time() if now is None else now) + settings.TURN_TTL)
    username = f"{expires}:{identity}"
    digest = hmac.new(settings.TURN_SECRET.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers_for(identity: str) -> list[dict]:
    """RTCIceServer dicts for one peer (a viewer `user-<id>` or a worker)."""
    servers = [dict(server) for server in settings.WEBRTC_ICE_SERVERS]
    if settings.TURN_URLS and settings.TURN_SECRET:
        username, credential = turn_credentials(identity)
        servers.append({"urls": list(settings.TURN_URLS), "username": username, "credential": credential})
    return servers
