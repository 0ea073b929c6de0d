"""Classroom mode, web side: a host session's broadcast and its viewer tokens.

The host's session socket asks the worker hosting its session to open a broadcast
(`live.broadcast`); the web then issues a viewer token for it. A broadcast's record in Redis
(the worker's channel, the avatar, the host session) and the sha256 of its tokens live as
long as the broadcast: the worker deletes them when it ends (`broadcast_forget`), and they
expire after the longest a host session may last (LIVE_MAX_SESSION_SECONDS) in any case.
A token opens only its own broadcast's viewer socket, WS /ws/broadcasts/{id}/?token=, and
the watch page; viewers may watch and listen, never say, ask or interrupt.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets

from asgiref.sync import sync_to_async
from django.conf import settings

from contracts import live_registry as registry
from contracts.store import client, redis_key
from tutor_site.exceptions import InvalidInput, NotReady, ObjectNotFound, SessionTokenInvalid, TooManyRequests

VIEWER_TOKEN_PREFIX = "vtb_"
# A session without a maximum length: its broadcast's record still expires after a day.
RECORD_SECONDS_WITHOUT_LIMIT = 24 * 3600
_BROADCAST_ID = re.compile(r"^[0-9a-f]{32}$")


def broadcast_group_name(broadcast_id: str) -> str:
    """The channel-layer group of a broadcast's viewer sockets: the worker sends their events to it."""
    return f"broadcast.{broadcast_id}"


def _record_key(broadcast_id: str) -> str:
    return redis_key("broadcast", broadcast_id)


def _tokens_key(broadcast_id: str) -> str:
    return redis_key("broadcast", broadcast_id, "tokens")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _record_seconds() -> int:
    seconds = int(settings.LIVE_MAX_SESSION_SECONDS)
    return seconds + 60 if seconds > 0 else RECORD_SECONDS_WITHOUT_LIMIT


def broadcast_token_issue(broadcast_id: str, *, channel: str, avatar_id: int, session_id: str) -> str:
    """A new viewer token of the broadcast (its record made or refreshed); the secret is
    returned once and kept as its sha256."""
    token = VIEWER_TOKEN_PREFIX + secrets.token_urlsafe(24)
    record = json.dumps({"channel": channel, "avatar_id": avatar_id, "session_id": session_id})
    seconds = _record_seconds()
    with client().pipeline() as pipe:
        pipe.set(_record_key(broadcast_id), record, ex=seconds, nx=True)
        pipe.sadd(_tokens_key(broadcast_id), _token_hash(token))
        pipe.expire(_tokens_key(broadcast_id), seconds)
        pipe.execute()
    return token


def broadcast_ice_grant(broadcast_id: str) -> dict:
    """The ICE servers a viewer of this broadcast gets (TURN credentials named after the class)."""
    from contracts.ice_servers import ice_servers_grant

    return ice_servers_grant(f"broadcast-{broadcast_id[:12]}")


def broadcast_viewer_resolve(broadcast_id: str, token) -> dict:
    """The broadcast's record ({channel, avatar_id, session_id}) when `token` is one of its
    viewer tokens. No such broadcast (or ended): ObjectNotFound; a wrong token: SessionTokenInvalid."""
    if not isinstance(broadcast_id, str) or not _BROADCAST_ID.match(broadcast_id):
        raise ObjectNotFound("No such broadcast: the link is wrong, or the broadcast has ended.")
    if not isinstance(token, str) or not token:
        raise SessionTokenInvalid("A viewer token is required: open the broadcast's link (…?token=…).")
    with client().pipeline() as pipe:
        pipe.get(_record_key(broadcast_id))
        pipe.sismember(_tokens_key(broadcast_id), _token_hash(token))
        raw, known = pipe.execute()
    if raw is None:
        raise ObjectNotFound("No such broadcast: the link is wrong, or the broadcast has ended.")
    if not known:
        raise SessionTokenInvalid("This viewer token is not valid for this broadcast; ask the host for its link.")
    record = json.loads(raw)
    if not registry.worker_alive(record["channel"]):  # killed: it could not say the broadcast ended
        broadcast_forget(broadcast_id)
        raise ObjectNotFound("This broadcast has ended: the server hosting it stopped.")
    return record


def broadcast_forget(broadcast_id: str) -> None:
    """The broadcast ended (the worker, or its host): its link stops working at once."""
    client().delete(_record_key(broadcast_id), _tokens_key(broadcast_id))


def broadcast_join_url(broadcast_id: str, token: str, *, host: str = "", secure: bool = False) -> str:
    """The watch page of the broadcast for this token (absolute when the host is known)."""
    path = f"/watch/{broadcast_id}/?token={token}"
    return f"{'https' if secure else 'http'}://{host}{path}" if host else path


def _refusal(event: dict, default: str):
    detail = event.get("detail") or default
    if event.get("status") == TooManyRequests.status_code:
        return TooManyRequests(detail, retry_after=event.get("retry_after") or 30)
    return NotReady(detail)


async def broadcast_open(*, channel: str, session_id: str, avatar_id: int, host: str = "", secure: bool = False):
    """The host's `broadcast` message: the worker opens (or finds) the session's broadcast;
    returns the event for the host {type: broadcast, broadcast_id, viewer_token, join_url, ...}."""
    from .live_services import live_request_async

    reply = await live_request_async(channel, {"type": "live.broadcast", "session_id": session_id})
    if reply.get("type") != "broadcast":
        raise _refusal(reply, "The worker could not open a broadcast of this session.")
    broadcast_id = reply["broadcast_id"]
    token = await sync_to_async(broadcast_token_issue)(
        broadcast_id, channel=channel, avatar_id=avatar_id, session_id=session_id
    )
    return {
        "type": "broadcast",
        "broadcast_id": broadcast_id,
        "viewer_token": token,
        "join_url": broadcast_join_url(broadcast_id, token, host=host, secure=secure),
        "ws_path": f"/ws/broadcasts/{broadcast_id}/?token={token}",
        "viewers": reply.get("viewers", 0),
        "max_viewers": reply.get("max_viewers", settings.LIVE_BROADCAST_MAX_VIEWERS),
    }


async def broadcast_join(record: dict, broadcast_id: str, sdp, events_to: str) -> dict:
    """A viewer's offer, relayed to the worker hosting the broadcast: its answer event."""
    from .live_services import live_request_async

    if not isinstance(sdp, str) or "v=0" not in sdp[:200]:
        raise InvalidInput("sdp must be an SDP offer (text starting with 'v=0').", field="sdp")
    message = {"type": "live.broadcast_join", "broadcast_id": broadcast_id, "sdp": sdp, "events_to": events_to}
    reply = await live_request_async(record["channel"], message)
    if reply.get("type") != "answer":
        raise _refusal(reply, "The worker refused the viewer.")
    return reply
