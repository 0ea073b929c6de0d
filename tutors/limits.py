"""Per-tutor limits (issue 12): the figures and the checks the services call where a limit
is used. Each limit is the tutor's own field, or its TUTOR_* setting when empty (0: none).

- `max_avatars` (TUTOR_MAX_AVATARS): the tutor's avatars; checked on create, under the
  tutor's row lock.
- `max_live_sessions` (TUTOR_MAX_LIVE_SESSIONS): open sessions charged to it; the worker's
  reservation in the live registry (one Lua script with the admin's limit).
- `monthly_live_minutes` (TUTOR_MONTHLY_LIVE_MINUTES): a Redis counter the workers add to
  (`contracts.usage`); checked at the offer, and workers end sessions that reach it.
- `monthly_render_minutes` (TUTOR_MONTHLY_RENDER_MINUTES): the month's renders, the real
  duration once done and the estimate before; checked on render, under the lock.
- `max_storage_mb` (TUTOR_MAX_STORAGE_MB): bytes recorded on avatars and renders; checked
  on create and on a render's upload, under the lock.

Who is charged: `avatars.selectors.usage_tutor_for` (the avatar's tutor for its owner side,
the grantee's tutor for a tutor account it is shared with, the avatar's tutor for a grantee
admin without a tutor; a session token's creator's side). Refusals are `TooManyRequests`
(429) naming the limit, with Retry-After the seconds to the next month (UTC) for monthly
limits."""

from __future__ import annotations

import datetime as dt
import math

from django.conf import settings
from django.db.models import Q, Sum

from contracts import live_registry as registry
from contracts import usage
from contracts.errors import TooManyRequests

from .models import Tutor

LIMITS = {
    # field: (setting, unit, monthly)
    "max_avatars": ("TUTOR_MAX_AVATARS", "avatars", False),
    "max_live_sessions": ("TUTOR_MAX_LIVE_SESSIONS", "concurrent live sessions", False),
    "monthly_live_minutes": ("TUTOR_MONTHLY_LIVE_MINUTES", "live minutes this month", True),
    "monthly_render_minutes": ("TUTOR_MONTHLY_RENDER_MINUTES", "render minutes this month", True),
    "max_storage_mb": ("TUTOR_MAX_STORAGE_MB", "MB stored", False),
}
# Retry-After of the limits that do not reset: when something might have been freed.
NOT_MONTHLY_RETRY_SECONDS = 60
# Speech of a queued render, until it is done: about 14 characters a second.
CHARS_PER_SECOND = 14.0


def tutor_limit(tutor: Tutor, name: str) -> int:
    """The limit in force (0: none)."""
    value = getattr(tutor, name)
    return int(getattr(settings, LIMITS[name][0]) if value is None else value)


def tutor_lock(tutor_id: int) -> Tutor:
    """Inside a transaction: the tutor's row locked, so that its limits are decided one
    request at a time (on SQLite every transaction takes the write lock anyway)."""
    return Tutor.objects.select_for_update().get(pk=tutor_id)


def render_seconds_estimate(text: str = "", audio_seconds: float | None = None) -> float:
    if audio_seconds is not None:
        return max(1.0, float(audio_seconds))
    return max(1.0, len(text or "") / CHARS_PER_SECOND)


# --- current use --------------------------------------------------------------------------


def _month_start(now: dt.datetime | None = None) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    return dt.datetime(now.year, now.month, 1, tzinfo=dt.UTC)


def render_seconds_used(tutor_id: int) -> float:
    from avatars.models import AvatarRender, RenderStatus

    month = AvatarRender.objects.filter(usage_tutor_id=tutor_id, created_at__gte=_month_start())
    done = month.filter(status=RenderStatus.DONE).aggregate(s=Sum("duration_seconds"))["s"] or 0.0
    pending = month.filter(status__in=[RenderStatus.QUEUED, RenderStatus.PROCESSING]).aggregate(
        s=Sum("estimated_seconds")
    )["s"]
    return float(done) + float(pending or 0.0)


def storage_bytes_used(tutor_id: int) -> int:
    from avatars.models import Avatar, AvatarRender

    avatars = Avatar.objects.filter(tutor_id=tutor_id).aggregate(b=Sum("storage_bytes"))["b"] or 0
    renders = AvatarRender.objects.filter(Q(usage_tutor_id=tutor_id)).aggregate(b=Sum("storage_bytes"))["b"] or 0
    return int(avatars) + int(renders)


def _used(tutor: Tutor, name: str) -> float:
    from avatars.models import Avatar

    if name == "max_avatars":
        return Avatar.objects.filter(tutor_id=tutor.pk).count()
    if name == "max_live_sessions":
        return registry.tutor_session_count(tutor.pk)
    if name == "monthly_live_minutes":
        return usage.live_seconds_used(tutor.pk) / 60
    if name == "monthly_render_minutes":
        return render_seconds_used(tutor.pk) / 60
    return storage_bytes_used(tutor.pk) / (1024 * 1024)


def tutor_usage(tutor: Tutor) -> dict:
    """Every limit of the tutor: its value, the use now, what is left and, for the monthly
    ones, when they reset (the 1st of next month, UTC)."""
    _, reset = usage.month_now()
    rows = {}
    for name, (setting, unit, monthly) in LIMITS.items():
        limit, used = tutor_limit(tutor, name), _used(tutor, name)
        rows[name] = {
            "limit": limit or None,
            "used": round(used, 2),
            "left": None if not limit else round(max(0.0, limit - used), 2),
            "unit": unit,
            "from_setting": getattr(tutor, name) is None,
            "setting": setting,
            "resets_at": reset.isoformat().replace("+00:00", "Z") if monthly else None,
        }
    return {"tutor_id": tutor.pk, "limits": rows}


# --- refusals -------------------------------------------------------------------------------


def _refusal(tutor: Tutor, name: str, limit: int, used: float, wanted: str = "") -> TooManyRequests:
    setting, unit, monthly = LIMITS[name]
    shown = f"{used:.1f}" if isinstance(used, float) and not used.is_integer() else f"{int(used)}"
    text = f"Tutor '{tutor.name}' has reached its limit of {limit} {unit} ({name}; {shown} used{wanted})"
    if monthly:
        _, reset = usage.month_now()
        return TooManyRequests(
            f"{text}. It resets on {reset:%Y-%m-%d} 00:00 UTC; or ask the tutor's admin to raise {name}.",
            retry_after=usage.seconds_to_month_end(),
            extra={"limit": name},
        )
    return TooManyRequests(
        f"{text}. Free some first, or ask the tutor's admin to raise {name}.",
        retry_after=NOT_MONTHLY_RETRY_SECONDS,
        extra={"limit": name},
    )


def avatars_check(tutor: Tutor) -> None:
    """One more avatar for the tutor (after `tutor_lock`, in the creating transaction)."""
    from avatars.models import Avatar

    limit = tutor_limit(tutor, "max_avatars")
    if limit:
        count = Avatar.objects.filter(tutor_id=tutor.pk).count()
        if count >= limit:
            raise _refusal(tutor, "max_avatars", limit, count)


def storage_check(tutor: Tutor, new_bytes: int) -> None:
    """`new_bytes` more stored for the tutor (after `tutor_lock`)."""
    limit = tutor_limit(tutor, "max_storage_mb")
    if limit:
        used = storage_bytes_used(tutor.pk)
        if used + new_bytes > limit * 1024 * 1024:
            mb = used / (1024 * 1024)
            raise _refusal(tutor, "max_storage_mb", limit, mb, f", this upload {math.ceil(new_bytes / 1048576)} MB")


def render_minutes_check(tutor: Tutor, seconds: float) -> None:
    """A render of about `seconds` more (after `tutor_lock`)."""
    limit = tutor_limit(tutor, "monthly_render_minutes")
    if limit:
        used = render_seconds_used(tutor.pk)
        if used + seconds > limit * 60:
            raise _refusal(tutor, "monthly_render_minutes", limit, used / 60, f", this clip about {seconds / 60:.1f}")


def live_minutes_check(tutor: Tutor) -> None:
    """Before a live session opens: the tutor has minutes left this month."""
    limit = tutor_limit(tutor, "monthly_live_minutes")
    if limit:
        used = usage.live_seconds_used(tutor.pk) / 60
        if used >= limit:
            raise _refusal(tutor, "monthly_live_minutes", limit, used)
