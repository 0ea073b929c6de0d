"""Who serves what, in Redis: shared by the web process and the worker runtimes.

- `live:worker:<channel>`: a runtime's heartbeat (JSON facts), expiring after
  LIVE_HEARTBEAT_TTL; a runtime without one is dead.
- `live:session:<id>`: which avatar, admin and runtime a session belongs to (for the HTTP
  proxy, which only gets a session id), refreshed with the heartbeat.
- `live:user:<id>`: a sorted set of the admin's open session ids (score = expiry time), for
  the per-admin limit across workers: `session_reserve` checks and adds in one step (a Lua
  script), so concurrent offers on any workers cannot pass LIVE_MAX_SESSIONS_PER_ADMIN.
- `live:avatar:<id>`: the same for an avatar's open sessions (is it in use?).
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


# KEYS: the admin's set, the avatar's set, the session record. ARGV: now, expiry, ttl, limit
# (<= 0: none), session id, record. Returns -1 when recorded, else the sessions already open.
_RESERVE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local open = redis.call('ZCARD', KEYS[1])
local limit = tonumber(ARGV[4])
if limit > 0 and open >= limit and not redis.call('ZSCORE', KEYS[1], ARGV[5]) then
  return open
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[6], 'EX', ARGV[3])
return -1
"""
_reserve = None


def session_reserve(session_id: str, *, avatar_id: int, user_id: int, channel: str, limit: int) -> int | None:
    """Record a new session if the admin has fewer than `limit` open (check and add in one
    step): None when recorded, else how many are open (nothing recorded). Released by
    `session_remove`, or by expiry when its worker stops refreshing it."""
    global _reserve
    if _reserve is None:
        _reserve = client().register_script(_RESERVE_SCRIPT)
    ttl = _session_ttl()
    now = time.time()
    record = json.dumps({"avatar_id": avatar_id, "user_id": user_id, "channel": channel})
    open_ = _reserve(
        keys=[_key("user", user_id), _key("avatar", avatar_id), _key("session", session_id)],
        args=[now, now + ttl, ttl, int(limit), session_id, record],
        client=client(),
    )
    return None if int(open_) < 0 else int(open_)


def session_add(session_id: str, *, avatar_id: int, user_id: int, channel: str) -> None:
    """Record a session whatever the admin's count (`session_reserve` with no limit)."""
    session_reserve(session_id, avatar_id=avatar_id, user_id=user_id, channel=channel, limit=0)


def session_refresh(sessions: dict[str, tuple[int, int]]) -> None:
    """Keep the records of open sessions (id -> (user id, avatar id)) from expiring. Only
    those still recorded: a session removed meanwhile is not brought back."""
    if not sessions:
        return
    ttl = _session_ttl()
    expiry = time.time() + ttl
    with client().pipeline() as pipe:
        for session_id, (user_id, avatar_id) in sessions.items():
            pipe.expire(_key("session", session_id), ttl)
            for key in (_key("user", user_id), _key("avatar", avatar_id)):
                pipe.zadd(key, {session_id: expiry}, xx=True)
                pipe.expire(key, ttl)
        pipe.execute()


def session_remove(session_id: str, user_id: int, avatar_id: int | None = None) -> None:
    with client().pipeline() as pipe:
        pipe.delete(_key("session", session_id))
        pipe.zrem(_key("user", user_id), session_id)
        if avatar_id is not None:
            pipe.zrem(_key("avatar", avatar_id), session_id)
        pipe.execute()


def session_get(session_id: str) -> dict | None:
    if not session_id or len(session_id) > 64:
        return None
    value = client().get(_key("session", session_id))
    return json.loads(value) if value else None


def _open_count(key: str) -> int:
    with client().pipeline() as pipe:
        pipe.zremrangebyscore(key, "-inf", time.time())
        pipe.zcard(key)
        return int(pipe.execute()[1])


def user_session_count(user_id: int) -> int:
    return _open_count(_key("user", user_id))


def avatar_session_count(avatar_id: int) -> int:
    """Open sessions of an avatar, on whichever worker."""
    return _open_count(_key("avatar", avatar_id))
