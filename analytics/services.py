"""Recording usage as it happens: called by the apps' services (renders, preprocessing
failures) and by the workers (live sessions, preprocessing done). Each event is written
with its day's and month's totals (`UsageRollup`) in one transaction.

Recording never breaks the thing recorded: every function here logs and returns on any
failure. Live sessions call these on their loop's executor, never on the loop itself."""

from __future__ import annotations

import bisect
import datetime as dt
import logging

from django.db import IntegrityError, transaction
from django.db.models import F

from .models import (
    ALL_AVATARS,
    LATENCY_BUCKETS,
    LATENCY_EDGES_MS,
    Grain,
    RenderRequester,
    UsageEvent,
    UsageKind,
    UsageRollup,
)

logger = logging.getLogger(__name__)

# What an event adds to its totals: {field: value or "value"} per kind.
_ADDS = {
    UsageKind.SESSION_OPENED: {"sessions": 1},
    UsageKind.SESSION_CLOSED: {"session_seconds": "value"},
    UsageKind.UTTERANCE: {"utterances": 1, "spoken_seconds": "value"},
    UsageKind.ANSWER: {"answers": 1},
    UsageKind.RENDER: {"renders": 1, "rendered_seconds": "value"},
    UsageKind.PREPROCESS: {"preprocess_jobs": 1, "preprocess_seconds": "value"},
    UsageKind.ERROR: {"errors": 1},
}


def latency_bucket(ms: float) -> str:
    return LATENCY_BUCKETS[max(0, bisect.bisect_right(LATENCY_EDGES_MS, ms) - 1)]


def _adds(event: UsageEvent) -> dict:
    adds = {name: (event.value or 0.0) if add == "value" else add for name, add in _ADDS[event.kind].items()}
    if event.kind == UsageKind.ANSWER and event.value is not None:
        adds[latency_bucket(event.value)] = 1
    return adds


def _rollup_add(event: UsageEvent) -> None:
    day = event.at.astimezone(dt.UTC).date()
    adds = _adds(event)
    for grain, start in ((Grain.DAY, day), (Grain.MONTH, day.replace(day=1))):
        for avatar_id in (event.avatar_id, ALL_AVATARS):
            _rollup_row_add(grain, start, avatar_id, event, adds)


def _rollup_row_add(grain: str, start: dt.date, avatar_id: int, event: UsageEvent, adds: dict) -> None:
    key = {"grain": grain, "start": start, "tutor_id": event.tutor_id, "avatar_id": avatar_id}
    key["actor_id"] = event.actor_id or 0
    rows = UsageRollup.objects.filter(**key)
    if not rows.update(**{name: F(name) + value for name, value in adds.items()}):
        try:
            with transaction.atomic():
                UsageRollup.objects.create(**key, owner_id=event.owner_id, **adds)
        except IntegrityError:  # another writer created it meanwhile
            rows.update(**{name: F(name) + value for name, value in adds.items()})


def usage_record(
    kind: str,
    *,
    avatar_id: int,
    value: float | None = None,
    actor_id: int | None = None,
    extra: dict | None = None,
    at: dt.datetime | None = None,
) -> UsageEvent | None:
    """Record that `kind` happened to avatar `avatar_id` (see `UsageKind` for `value`);
    None when it could not be recorded (logged)."""
    from avatars.models import Avatar

    try:
        # A savepoint around it all: a caller's transaction survives any failure here.
        with transaction.atomic():
            ids = Avatar.objects.filter(pk=avatar_id).values_list("tutor_id", "owner_id").first()
            if ids is None:
                return None  # deleted meanwhile: nobody left to report it to
            event = UsageEvent(
                kind=kind,
                at=at or dt.datetime.now(dt.UTC),
                avatar_id=avatar_id,
                tutor_id=ids[0],
                owner_id=ids[1],
                actor_id=actor_id,
                value=value,
                extra=extra or {},
            )
            event.save()
            _rollup_add(event)
        return event
    except Exception:
        logger.warning("Usage %s of avatar %s not recorded", kind, avatar_id, exc_info=True)
        return None


# --- live sessions (the live worker, on its loop's executor) ---------------------------


def _session_actor(opened_by: int | None, token_id: int | None) -> int | None:
    """An account's session is its own; a student's (session token) its token creator's."""
    if opened_by is not None or token_id is None:
        return opened_by
    from avatars.models import SessionToken

    try:
        return SessionToken.objects.filter(pk=token_id).values_list("created_by_id", flat=True).first()
    except Exception:
        logger.warning("Usage: the creator of session token %s not found", token_id, exc_info=True)
        return None


def usage_session_opened(avatar_id: int, *, session_id: str, opened_by: int | None, token_id: int | None) -> None:
    actor = _session_actor(opened_by, token_id)
    viewer = "student" if token_id is not None else "account"
    usage_record(
        UsageKind.SESSION_OPENED, avatar_id=avatar_id, actor_id=actor, extra={"session": session_id, "viewer": viewer}
    )


def usage_session_closed(
    avatar_id: int, *, session_id: str, opened_by: int | None, token_id: int | None, seconds: float, reason: str
) -> None:
    actor = _session_actor(opened_by, token_id)
    viewer = "student" if token_id is not None else "account"
    usage_record(
        UsageKind.SESSION_CLOSED,
        avatar_id=avatar_id,
        actor_id=actor,
        value=round(max(0.0, seconds), 3),
        extra={"session": session_id, "viewer": viewer, "reason": reason[:80]},
    )


def usage_utterance(
    avatar_id: int, *, opened_by: int | None, token_id: int | None, seconds: float, interrupted: bool
) -> None:
    usage_record(
        UsageKind.UTTERANCE,
        avatar_id=avatar_id,
        actor_id=_session_actor(opened_by, token_id),
        value=round(max(0.0, seconds), 3),
        extra={"interrupted": True} if interrupted else None,
    )


def usage_answer(
    avatar_id: int, *, opened_by: int | None, token_id: int | None, first_frame_ms: int | None, interrupted: bool
) -> None:
    usage_record(
        UsageKind.ANSWER,
        avatar_id=avatar_id,
        actor_id=_session_actor(opened_by, token_id),
        value=first_frame_ms,
        extra={"interrupted": True} if interrupted else None,
    )


def usage_session_error(avatar_id: int, kind: str, *, opened_by: int | None, token_id: int | None, detail: str) -> None:
    usage_error(avatar_id, kind, actor_id=_session_actor(opened_by, token_id), detail=detail)


def usage_error(avatar_id: int, kind: str, *, actor_id: int | None = None, detail: str = "") -> None:
    usage_record(
        UsageKind.ERROR, avatar_id=avatar_id, actor_id=actor_id, extra={"kind": kind[:40], "detail": detail[:200]}
    )


# --- renders (avatars.render_services) and preprocessing --------------------------------


def usage_render_requested(render_id: int, actor_id: int | None) -> None:
    """Remember who asked for clip `render_id` until it is done (its usage is theirs)."""
    if actor_id is None:
        return
    try:
        RenderRequester.objects.update_or_create(render_id=render_id, defaults={"actor_id": actor_id})
    except Exception:
        logger.warning("Usage: render %s's requester not recorded", render_id, exc_info=True)


def _render_requester_pop(render_id: int) -> int | None:
    try:
        actor = RenderRequester.objects.filter(render_id=render_id).values_list("actor_id", flat=True).first()
        RenderRequester.objects.filter(render_id=render_id).delete()
        return actor
    except Exception:
        logger.warning("Usage: render %s's requester not read", render_id, exc_info=True)
        return None


def _render_avatar_id(render_id: int) -> int | None:
    from avatars.models import AvatarRender

    return AvatarRender.objects.filter(pk=render_id).values_list("avatar_id", flat=True).first()


def usage_render_done(render_id: int, *, seconds: float) -> None:
    try:
        avatar_id = _render_avatar_id(render_id)
    except Exception:
        logger.warning("Usage: render %s not recorded", render_id, exc_info=True)
        return
    if avatar_id is not None:
        usage_record(
            UsageKind.RENDER,
            avatar_id=avatar_id,
            actor_id=_render_requester_pop(render_id),
            value=round(seconds, 3),
            extra={"render": render_id},
        )


def usage_render_failed(render_id: int, reason: str) -> None:
    try:
        avatar_id = _render_avatar_id(render_id)
    except Exception:
        logger.warning("Usage: render %s's failure not recorded", render_id, exc_info=True)
        return
    if avatar_id is not None:
        usage_error(avatar_id, "render", actor_id=_render_requester_pop(render_id), detail=reason)


def usage_preprocess_done(avatar_id: int, *, seconds: float) -> None:
    usage_record(UsageKind.PREPROCESS, avatar_id=avatar_id, value=round(seconds, 3))


def usage_preprocess_failed(avatar_id: int, reason: str) -> None:
    usage_error(avatar_id, "preprocess", detail=reason)
