"""Who serves what, in Redis: shared by the web process and the worker runtimes.

- `live:worker:<channel>`: a runtime's heartbeat (JSON facts), expiring after
  LIVE_HEARTBEAT_TTL; a runtime without one is dead.
- `live:session:<id>`: which avatar, admin and runtime a session belongs to (for the HTTP
  proxy, which only gets a session id), refreshed with the heartbeat.
- `live:user:<id>`: a sorted set of the admin's open session ids (score = expiry time), for
  the per-admin limit across workers: `session_reserve` checks and adds in one step (a Lua
  script), so concurrent offers on any workers cannot pass LIVE_MAX_SESSIONS_PER_ADMIN.
- `live:avatar:<id>`: the same for an avatar's open sessions (is it in use?).
- `live:tutor:<id>`: the same for the sessions charged to a tutor (its `max_live_sessions`,
  checked in the same script as the admin's limit).
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
    with client().pipeline() as pipe:
        pipe.set(_key("worker", channel), json.dumps(facts), ex=max(1, int(settings.LIVE_HEARTBEAT_TTL)))
        pipe.sadd(_key("known"), channel)
        pipe.expire(_key("known"), KNOWN_TTL)
        pipe.execute()


# Channels that have beaten here (in this key prefix), for a week after their last beat.
KNOWN_TTL = 7 * 24 * 3600


def workers_known_dead(channels) -> set[str]:
    """Of these serving channels, those of live runtimes that beat here and stopped. A
    channel that never beat under this key prefix is not ours to judge (another deployment
    sharing the database, or Redis lost its data: the avatar moves on its next start)."""
    channels = [c for c in set(channels) if c]
    if not channels:
        return set()
    with client().pipeline() as pipe:
        for channel in channels:
            pipe.sismember(_key("known"), channel)
            pipe.exists(_key("worker", channel))
            pipe.exists(_key("dead", channel))
        answers = pipe.execute()
    return {
        channel
        for channel, known, alive, dead in zip(channels, answers[::3], answers[1::3], answers[2::3], strict=True)
        if dead or (known and not alive)
    }


def workers_known_forget(channels) -> None:
    """The sweep reset what these dead workers served: drop them from the known set, and
    keep a tombstone a while for the sockets still watching them (avatars.worker_watch)."""
    if not channels:
        return
    with client().pipeline() as pipe:
        pipe.srem(_key("known"), *channels)
        for channel in channels:
            pipe.set(_key("dead", channel), 1, ex=DEAD_TTL)
        pipe.execute()


DEAD_TTL = 600


def worker_forget(channel: str) -> None:
    client().delete(_key("worker", channel))


def worker_alive(channel: str) -> bool:
    if not channel:
        return False
    return bool(client().exists(_key("worker", channel)))


def worker_facts(channel: str) -> dict | None:
    """A live runtime's last heartbeat (None: dead or unknown)."""
    if not channel:
        return None
    value = client().get(_key("worker", channel))
    return json.loads(value) if value else None


def worker_serving(channel: str) -> bool:
    """Alive and taking avatars and sessions (a draining worker is finishing its last ones)."""
    facts = worker_facts(channel)
    return facts is not None and not facts.get("draining")


def placing_add(channel: str, avatar_id: int, seconds: float) -> None:
    """An avatar sent to this worker to warm, not yet in its heartbeat: counted by placement
    (`placing_count`) until then, so starts in quick succession spread over the workers."""
    key = _key("placing", channel)
    with client().pipeline() as pipe:
        pipe.zadd(key, {str(avatar_id): time.time() + seconds})
        pipe.expire(key, max(1, int(seconds)))
        pipe.execute()


def placing_ids(channel: str) -> set[int]:
    key = _key("placing", channel)
    with client().pipeline() as pipe:
        pipe.zremrangebyscore(key, "-inf", time.time())
        pipe.zrange(key, 0, -1)
        return {int(member) for member in pipe.execute()[1]}


def placing_remove(channel: str, avatar_id: int) -> None:
    client().zrem(_key("placing", channel), str(avatar_id))


def sweep_claim(seconds: float) -> bool:
    """One live runtime at a time looks for dead workers (see runtime's heartbeat)."""
    return bool(client().set(_key("sweep"), "1", nx=True, ex=max(1, int(seconds))))


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


# KEYS: the admin's set, the avatar's set, the session record, the tutor's set. ARGV: now,
# expiry, ttl, the admin's limit (<= 0: none), session id, record, the tutor's limit (<= 0:
# none). Returns {0, 0} when recorded, else {1 (admin) or 2 (tutor), the sessions open}.
_RESERVE_SCRIPT = """
local limit = tonumber(ARGV[4])
local tutor_limit = tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local open = redis.call('ZCARD', KEYS[1])
if limit > 0 and open >= limit and not redis.call('ZSCORE', KEYS[1], ARGV[5]) then
  return {1, open}
end
if tutor_limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
  local tutor_open = redis.call('ZCARD', KEYS[4])
  if tutor_open >= tutor_limit and not redis.call('ZSCORE', KEYS[4], ARGV[5]) then
    return {2, tutor_open}
  end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[3])
if KEYS[4] ~= '' then
  redis.call('ZADD', KEYS[4], ARGV[2], ARGV[5])
  redis.call('EXPIRE', KEYS[4], ARGV[3])
end
redis.call('SET', KEYS[3], ARGV[6], 'EX', ARGV[3])
return {0, 0}
"""
_reserve = None


def session_reserve_checked(
    session_id: str,
    *,
    avatar_id: int,
    user_id: int,
    channel: str,
    limit: int,
    tutor_id: int | None = None,
    tutor_limit: int = 0,
) -> tuple[str, int] | None:
    """Record a new session if the admin has fewer than `limit` open and its tutor fewer
    than `tutor_limit` (checked and added in one step): None when recorded, else ("admin"
    or "tutor", how many are open) with nothing recorded. Released by `session_remove`, or
    by expiry when its worker stops refreshing it."""
    global _reserve
    if _reserve is None:
        _reserve = client().register_script(_RESERVE_SCRIPT)
    ttl = _session_ttl()
    now = time.time()
    record = json.dumps({"avatar_id": avatar_id, "user_id": user_id, "channel": channel, "tutor_id": tutor_id})
    tutor_key = _key("tutor", tutor_id) if tutor_id is not None else ""
    code, open_ = _reserve(
        keys=[_key("user", user_id), _key("avatar", avatar_id), _key("session", session_id), tutor_key],
        args=[now, now + ttl, ttl, int(limit), session_id, record, int(tutor_limit) if tutor_id is not None else 0],
        client=client(),
    )
    if int(code) == 0:
        return None
    return ("admin" if int(code) == 1 else "tutor"), int(open_)


def session_reserve(session_id: str, *, avatar_id: int, user_id: int, channel: str, limit: int, **tutor) -> int | None:
    """`session_reserve_checked` answering None (recorded) or how many sessions are open."""
    refused = session_reserve_checked(
        session_id, avatar_id=avatar_id, user_id=user_id, channel=channel, limit=limit, **tutor
    )
    return None if refused is None else refused[1]


def session_add(session_id: str, *, avatar_id: int, user_id: int, channel: str, tutor_id: int | None = None) -> None:
    """Record a session whatever the counts (`session_reserve` with no limit)."""
    session_reserve(session_id, avatar_id=avatar_id, user_id=user_id, channel=channel, limit=0, tutor_id=tutor_id)


def session_refresh(sessions: dict[str, tuple]) -> None:
    """Keep the records of open sessions (id -> (user id, avatar id[, tutor id])) from
    expiring. Only those still recorded: a session removed meanwhile is not brought back."""
    if not sessions:
        return
    ttl = _session_ttl()
    expiry = time.time() + ttl
    with client().pipeline() as pipe:
        for session_id, (user_id, avatar_id, *tutor) in sessions.items():
            pipe.expire(_key("session", session_id), ttl)
            keys = [_key("user", user_id), _key("avatar", avatar_id)]
            keys += [_key("tutor", tutor_id) for tutor_id in tutor if tutor_id is not None]
            for key in keys:
                pipe.zadd(key, {session_id: expiry}, xx=True)
                pipe.expire(key, ttl)
        pipe.execute()


def session_remove(session_id: str, user_id: int, avatar_id: int | None = None, tutor_id: int | None = None) -> None:
    with client().pipeline() as pipe:
        pipe.delete(_key("session", session_id))
        pipe.zrem(_key("user", user_id), session_id)
        if avatar_id is not None:
            pipe.zrem(_key("avatar", avatar_id), session_id)
        if tutor_id is not None:
            pipe.zrem(_key("tutor", tutor_id), session_id)
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


def tutor_session_count(tutor_id: int) -> int:
    """Open sessions charged to a tutor, on whichever worker."""
    return _open_count(_key("tutor", tutor_id))


def avatar_session_count(avatar_id: int) -> int:
    """Open sessions of an avatar, on whichever worker."""
    return _open_count(_key("avatar", avatar_id))
