"""Per-admin quotas: the counting the services share (they decide when to call it).

"The admin" is the owner of the tutor whose avatar is used (an operator working on an
admin's avatar uses that admin's quota); a voice preview without an avatar counts for the
caller. Every refusal is a `TooManyRequests` (429 with Retry-After) saying which setting
limits what, how many are in use, and when to try again.

- Jobs (`RENDER_MAX_QUEUED_PER_ADMIN`, `AVATAR_MAX_PROCESSING_PER_ADMIN`): counted in the
  database inside the transaction that adds one, after `owner_lock` (the admin's row
  locked; on SQLite every transaction takes the write lock when it begins), so two
  requests at once cannot both see room for one.
- Speech (`TTS_MAX_CHARS_PER_MINUTE`): a Redis counter per admin and minute window, checked
  and added in one Lua script; Retry-After is the time left in the window.
"""

from __future__ import annotations

import math
import time

from django.conf import settings

from contracts.errors import InvalidInput, TooManyRequests
from contracts.store import client, redis_key
from tutors.models import User

from .models import Avatar, AvatarRender, AvatarStatus, RenderStatus

# Retry-After for a job quota: how long a job of the kind usually takes to free its place.
RENDER_RETRY_SECONDS = 30
PREPROCESS_RETRY_SECONDS = 60
TTS_WINDOW_SECONDS = 60


def avatar_owner_id(avatar: Avatar) -> int:
    """The admin whose quotas `avatar` uses."""
    return avatar.tutor.owner_id


def owner_lock(owner_id: int) -> None:
    """Inside a transaction: serialise the admin's quota decisions until it ends."""
    User.objects.select_for_update().filter(pk=owner_id).values_list("pk", flat=True).first()


# --- jobs ---------------------------------------------------------------------------------


def renders_queued_check(owner_id: int) -> None:
    """Refuse one more talking clip while the admin has RENDER_MAX_QUEUED_PER_ADMIN queued or
    rendering. Call it after `owner_lock`, in the transaction that creates the render."""
    limit = settings.RENDER_MAX_QUEUED_PER_ADMIN
    busy = AvatarRender.objects.filter(
        avatar__tutor__owner_id=owner_id, status__in=[RenderStatus.QUEUED, RenderStatus.PROCESSING]
    ).count()
    if busy >= limit:
        raise TooManyRequests(
            f"You already have {busy} talking clips queued or rendering, the limit per admin "
            f"(RENDER_MAX_QUEUED_PER_ADMIN = {limit}); request another when one has finished.",
            retry_after=RENDER_RETRY_SECONDS,
        )


def preprocessing_check(owner_id: int, *, excluding: int | None = None) -> None:
    """Refuse one more preprocessing job while AVATAR_MAX_PROCESSING_PER_ADMIN of the admin's
    avatars are processing. After `owner_lock` when it guards a write (without, for the
    checks that write nothing: the form, a dry run)."""
    limit = settings.AVATAR_MAX_PROCESSING_PER_ADMIN
    qs = Avatar.objects.filter(tutor__owner_id=owner_id, status=AvatarStatus.PROCESSING)
    if excluding is not None:
        qs = qs.exclude(pk=excluding)
    busy = qs.count()
    if busy >= limit:
        raise TooManyRequests(
            f"You already have {busy} avatars being processed, the limit per admin "
            f"(AVATAR_MAX_PROCESSING_PER_ADMIN = {limit}); add or reprocess another when one is ready.",
            retry_after=PREPROCESS_RETRY_SECONDS,
        )


# --- speech characters per minute -----------------------------------------------------------

_CHARGE_SCRIPT = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
if used + n > tonumber(ARGV[2]) then
  return {0, used}
end
used = redis.call('INCRBY', KEYS[1], n)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, used}
"""
_charge = None


def _clock() -> float:
    return time.time()


def tts_chars_charge(owner_id: int, text: str, *, at_least: int = 0) -> None:
    """Count `text` (as `at_least` characters when it is shorter: a question costs its
    answer's speech) against the admin's TTS_MAX_CHARS_PER_MINUTE, or refuse it (nothing
    counted) with Retry-After = the seconds left in this minute window."""
    global _charge
    limit = settings.TTS_MAX_CHARS_PER_MINUTE
    n = max(len(text or ""), at_least)
    if limit <= 0 or n == 0:
        return
    if n > limit:
        raise InvalidInput(
            f"The text has {n} characters, more than an admin may send to speech in a minute "
            f"(TTS_MAX_CHARS_PER_MINUTE = {limit}); split it.",
            field="text",
        )
    now = _clock()
    window = int(now // TTS_WINDOW_SECONDS)
    if _charge is None:
        _charge = client().register_script(_CHARGE_SCRIPT)
    allowed, used = _charge(
        keys=[redis_key("quota", "tts-chars", owner_id, window)],
        args=[n, limit, 2 * TTS_WINDOW_SECONDS],
        client=client(),
    )
    if not allowed:
        retry = max(1, math.ceil((window + 1) * TTS_WINDOW_SECONDS - now))
        raise TooManyRequests(
            f"Speech quota reached: {int(used)} of the {limit} characters an admin may send to speech "
            f"per minute (TTS_MAX_CHARS_PER_MINUTE) are used; this text has {n}. Try again in {retry} s.",
            retry_after=retry,
        )
