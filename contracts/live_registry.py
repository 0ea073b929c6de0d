"""Who serves what, in Redis: shared by the web process and the worker runtimes.

- `live:worker:<channel>`: a runtime's heartbeat (JSON facts), expiring after
  LIVE_HEARTBEAT_TTL; a runtime without one is dead.
- `live:session:<id>`: which avatar, admin and runtime a session belongs to (for the HTTP
  proxy, which only gets a session id), refreshed with the heartbeat.
- `live:user:<id>`: a sorted set of the admin's open session ids (score = expiry time), for
  the per-admin limit across workers.
"""

from __future__ import annotations

import json
import time

from django.conf import settings

from .store import client, redis_key


def _key(*parts) -> str:
    return redis_key("live", *parts)


def _session_ttl() -> int:
    return max(2 * settings.LIVE_HEARTBEAT_TTL, 30)


def worker_beat(channel: str, facts: dict) -> None:
    client().set(_key("worker", channel), json.dumps(facts), ex=max(1, int(settings.LIVE_HEARTBEAT_TTL)))


def worker_forget(channel: str) -> None:
    client().delete(_key("worker", channel))


def worker_alive(channel: str) -> bool:
    if not channel:
        return False
    return bool(client().exists(_key("worker", channel)))


def workers() -> dict[str, dict]:
    """Channel -> heartbeat facts of every live runtime."""
    found = {}
    prefix = _key("worker", "")
    for raw in client().scan_iter(f"{prefix}*", count=200):
        name = raw.decode()
        value = client().get(name)
        if value:
            found[name[len(prefix) :]] = json.loads(value)
    return found


def session_add(session_id: str, *, avatar_id: int, user_id: int, channel: str) -> None:
    ttl = _session_ttl()
    with client().pipeline() as pipe:
        pipe.set(
            _key("session", session_id),
            json.dumps({"avatar_id": avatar_id, "user_id": user_id, "channel": channel}),
            ex=ttl,
        )
        pipe.zadd(_key("user", user_id), {session_id: time.time() + ttl})
        pipe.expire(_key("user", user_id), ttl)
        pipe.execute()


def session_refresh(sessions: dict[str, int]) -> None:
    """Keep the records of open sessions (id -> user id) from expiring."""
    if not sessions:
        return
    ttl = _session_ttl()
    with client().pipeline() as pipe:
        for session_id, user_id in sessions.items():
            pipe.expire(_key("session", session_id), ttl)
            pipe.zadd(_key("user", user_id), {session_id: time.time() + ttl})
            pipe.expire(_key("user", user_id), ttl)
        pipe.execute()


def session_remove(session_id: str, user_id: int) -> None:
    with client().pipeline() as pipe:
        pipe.delete(_key("session", session_id))
        pipe.zrem(_key("user", user_id), session_id)
        pipe.execute()


def session_get(session_id: str) -> dict | None:
    if not session_id or len(session_id) > 64:
        return None
    value = client().get(_key("session", session_id))
    return json.loads(value) if value else None


def user_session_count(user_id: int) -> int:
    key = _key("user", user_id)
    with client().pipeline() as pipe:
        pipe.zremrangebyscore(key, "-inf", time.time())
        pipe.zcard(key)
        return int(pipe.execute()[1])
