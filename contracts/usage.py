"""Live minutes used, in Redis: shared by the web (usage figures, the check before an offer,
revoking a session token) and the worker runtimes (which add their sessions' time).

- `quota:tutor-live-seconds:<tutor>:<YYYYMM>`: seconds of live sessions charged to a tutor
  in a calendar month (UTC); kept a little past the month.
- `quota:token-live-seconds:<token>`: seconds used through a student session token.
- `live:token-revoked:<token>`: set when a token is revoked, so that workers end the
  sessions opened with it (also those of the HTTP proxy, which have no socket to close).
"""

from __future__ import annotations

import datetime as dt

from .store import client, redis_key

_MONTH_TTL = 40 * 24 * 3600


def month_now(now: dt.datetime | None = None) -> tuple[str, dt.datetime]:
    """(the month's key "YYYYMM", when the next month begins), in UTC."""
    now = now or dt.datetime.now(dt.UTC)
    start = dt.datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=dt.UTC)
    return f"{now.year:04d}{now.month:02d}", start


def seconds_to_month_end(now: dt.datetime | None = None) -> int:
    now = now or dt.datetime.now(dt.UTC)
    return max(1, int((month_now(now)[1] - now).total_seconds()) + 1)


def _tutor_key(tutor_id: int, month: str | None = None) -> str:
    return redis_key("quota", "tutor-live-seconds", tutor_id, month or month_now()[0])


def _token_key(token_id: int) -> str:
    return redis_key("quota", "token-live-seconds", token_id)


def _revoked_key(token_id: int) -> str:
    return redis_key("live", "token-revoked", token_id)


def live_seconds_used(tutor_id: int) -> float:
    return float(client().get(_tutor_key(tutor_id)) or 0)


def token_seconds_used(token_id: int) -> float:
    return float(client().get(_token_key(token_id)) or 0)


def live_seconds_add(tutor_id: int | None, token_id: int | None, seconds: float) -> tuple[float, float, bool]:
    """Add a session's `seconds` to its tutor's month and its token: (the tutor's seconds
    this month, the token's seconds, whether the token was revoked)."""
    with client().pipeline() as pipe:
        if tutor_id is not None:
            pipe.incrbyfloat(_tutor_key(tutor_id), seconds)
            pipe.expire(_tutor_key(tutor_id), _MONTH_TTL)
        if token_id is not None:
            pipe.incrbyfloat(_token_key(token_id), seconds)
            pipe.exists(_revoked_key(token_id))
        results = pipe.execute()
    tutor_total = float(results[0]) if tutor_id is not None else 0.0
    token_results = results[2:] if tutor_id is not None else results
    token_total = float(token_results[0]) if token_id is not None else 0.0
    revoked = bool(token_results[1]) if token_id is not None else False
    return tutor_total, token_total, revoked


def token_revoked_mark(token_id: int, ttl_seconds: int) -> None:
    client().set(_revoked_key(token_id), "1", ex=max(60, int(ttl_seconds)))
