"""Live sessions, web side: start and stop avatars, find their serving worker, relay
signaling to it over the channel layer, and notice workers that died.

The worker side records itself through `avatar_live_started` and `avatar_live_worker_gone`.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import time
import uuid
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from contracts import live_registry as registry
from contracts import tasks
from contracts.store import client, redis_key
from contracts.tasks import task_send
from tutor_site.exceptions import (
    EngineUnavailable,
    InvalidInput,
    NotReady,
    ObjectNotFound,
    ServiceError,
    TooManyRequests,
)

from .engine_selectors import tts_engine_resolve
from .events import avatar_event_publish
from .live_placement import placement_choose
from .models import Avatar, AvatarStatus
from .quotas import avatar_owner_id, owner_lock, tts_chars_charge
from .selectors import avatar_get_live, avatar_voice_reference, usage_tutor_of

logger = logging.getLogger(__name__)


@dataclass
class StartResult:
    avatar: Avatar
    started: bool
    job_id: str = ""


def _not_startable(avatar: Avatar) -> NotReady | None:
    if avatar.status == AvatarStatus.PROCESSING:
        return NotReady(
            f"Avatar '{avatar.name}' is still being processed ({avatar.progress_percent}%); start it when it is ready."
        )
    if avatar.status == AvatarStatus.ERROR:
        return NotReady(
            f"Avatar '{avatar.name}' failed processing and cannot be started: "
            f"{avatar.error_message or 'unknown reason'}. Reprocess it or upload another video."
        )
    if not avatar.assets_path:
        return NotReady(f"Avatar '{avatar.name}' has no processed assets; reprocess it first.")
    return None


def avatar_is_serving(avatar: Avatar) -> bool:
    """Active on a worker that is alive and not draining (a start moves it elsewhere)."""
    return avatar.status == AvatarStatus.ACTIVE and registry.worker_serving(avatar.serving_channel)


def avatar_reference_for_start(avatar: Avatar, ref_file: str | None) -> tuple[str, str]:
    """The voice-cloning reference for the avatar's sessions: its own unless `ref_file`
    names another audio file of this avatar in storage (never a path outside it)."""
    if not ref_file:
        return avatar_voice_reference(avatar)
    if not isinstance(ref_file, str) or len(ref_file) > 255:
        raise InvalidInput("ref_file must be the storage name of one of the avatar's audio files.", field="ref_file")
    name = posixpath.normpath(ref_file.strip())
    if not name.startswith(f"{avatar.storage_prefix}/") or ".." in name.split("/"):
        raise InvalidInput(
            f"ref_file must be one of this avatar's own files (under '{avatar.storage_prefix}/'), "
            f"e.g. '{avatar.voice_reference_path or avatar.audio_path or avatar.storage_prefix + '/...'}'.",
            field="ref_file",
        )
    if not default_storage.exists(name):
        raise InvalidInput(f"ref_file '{name}' does not exist.", field="ref_file")
    text = avatar.voice_reference_text if name == avatar.voice_reference_path else ""
    return name, text


# --- start jobs -----------------------------------------------------------------------------
# A start is a job on the lipsync queue. Its id names the avatar (so a job id asked about
# through one avatar cannot be another's), and the avatar's pending job is kept in the
# cache (Redis, shared with the workers) until the worker reports how it went.
#
# Two stores, one order: the worker commits the row, then clears the marker, then publishes;
# a reader reads the marker, then the row (`avatar_start_pending_many` before the query). A
# reader that sees no marker any more therefore sees the outcome in the row, and one that
# still sees it follows the events channel, where the outcome comes after.

_JOB_PREFIX = "live-start"


def _start_job_new_id(avatar_id: int) -> str:
    return f"{_JOB_PREFIX}-{avatar_id}-{uuid.uuid4().hex}"


def _start_pending_key(avatar_id: int) -> str:
    return f"avatars:start-pending:{avatar_id}"


def avatar_start_pending(avatar_id: int) -> str:
    """The id of the avatar's start job still under way, or ''."""
    from django.core.cache import cache

    try:
        return cache.get(_start_pending_key(avatar_id)) or ""
    except Exception:  # noqa: BLE001 - a state read for display must not fail its caller
        return ""


def avatar_start_pending_many(avatar_ids) -> dict[int, str]:
    """{avatar id: start job id} of those with a start under way (one cache round trip)."""
    from django.core.cache import cache

    ids = list(avatar_ids)
    try:
        found = cache.get_many([_start_pending_key(pk) for pk in ids])
    except Exception:  # noqa: BLE001 - as avatar_start_pending
        return {}
    return {pk: found[_start_pending_key(pk)] for pk in ids if found.get(_start_pending_key(pk))}


def _start_pending_set(avatar_id: int, job_id: str) -> None:
    from django.core.cache import cache

    cache.set(_start_pending_key(avatar_id), job_id, timeout=max(30, int(settings.AVATAR_START_TIMEOUT)))


def avatar_start_pending_clear(avatar_id: int) -> None:
    """Forget the avatar's start job (the worker reported it, or the avatar is gone)."""
    from django.core.cache import cache

    cache.delete(_start_pending_key(avatar_id))


def _job_result(job_id: str):
    from tutor_site.celery import app

    return app.AsyncResult(job_id)


_JOB_UNFINISHED = ("PENDING", "RECEIVED", "STARTED", "RETRY")


def _start_target_key(job_id: str) -> str:
    return redis_key("live", "start-target", job_id)


def _start_target_serving(job_id: str) -> bool:
    """Is the worker a start job was sent to still there to take it? (A job in the queue of
    a worker killed since then would keep the avatar `starting` until it expires.)"""
    channel = client().get(_start_target_key(job_id))
    return channel is None or registry.worker_serving(channel.decode())


@dataclass
class StartJob:
    """How a start job stands: `starting`, `active` or `failed` (with the reason)."""

    job_id: str
    status: str
    detail: str = ""


def _outcome_failure(avatar: Avatar, outcome) -> str:
    """The reason a finished start job did not make the avatar active ('' if it did)."""
    if not isinstance(outcome, dict):
        return f"Starting avatar '{avatar.name}' failed on the worker: {outcome}"
    if outcome.get("status") == "active":
        return ""
    return outcome.get("detail") or f"Avatar '{avatar.name}' could not be started."


def avatar_start_job(avatar: Avatar, job_id: str | None = None) -> StartJob:
    """A start job of this avatar (by default the one under way): starting, active or
    failed. A job id that is not one of this avatar's starts is not found."""
    pending = avatar_start_pending(avatar.pk)
    job_id = job_id or pending
    if not job_id:
        raise ObjectNotFound(f"Avatar '{avatar.name}' has no start job under way.", field="job_id")
    if not job_id.startswith(f"{_JOB_PREFIX}-{avatar.pk}-"):
        raise ObjectNotFound(f"Start job {job_id} of avatar {avatar.pk} not found.", field="job_id")
    result = _job_result(job_id)
    state = result.state
    if state == "SUCCESS":
        reason = _outcome_failure(avatar, result.result)
        return StartJob(job_id, "failed" if reason else "active", reason)
    if state == "FAILURE":
        return StartJob(job_id, "failed", f"Starting avatar '{avatar.name}' failed on the worker: {result.result}")
    if state == "REVOKED":
        return StartJob(job_id, "failed", "The start job expired before a lip-sync worker took it; start again.")
    if state == "PENDING" and job_id != pending:
        # Never made, or finished so long ago that its result expired.
        raise ObjectNotFound(f"Start job {job_id} of avatar {avatar.pk} not found.", field="job_id")
    return StartJob(job_id, "starting")


def avatar_start(
    *,
    avatar: Avatar,
    ref_file: str | None = None,
    engine_url: str = "",
    wait: bool = False,
    timeout: float | None = None,
) -> StartResult:
    """Warm the avatar on a lip-sync worker. Returns at once with the job (`started`
    False, `job_id`): the worker reports the outcome on the avatar's events channel
    (`avatar.started` or `avatar.start_failed` with the reason). With `wait`, waits up to
    AVATAR_START_TIMEOUT for it (the contract's synchronous start). Idempotent: an avatar
    already served by a live worker is answered at once, and a start under way is reused.
    A new start takes one of the admin's LIVE_MAX_ACTIVE_AVATARS_PER_ADMIN places
    (`_active_slot_take`: the least recently used avatar without sessions is stopped, or 429)."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    avatar_live_reconcile(avatar_id=avatar.pk)
    avatar.refresh_from_db()
    problem = _not_startable(avatar)
    if problem:
        raise problem
    avatar_live_used(avatar)
    if avatar_is_serving(avatar):
        return StartResult(avatar, started=True)
    ref_file = avatar_reference_for_start(avatar, ref_file)[0] if ref_file else ""
    timeout = settings.AVATAR_START_TIMEOUT if timeout is None else timeout
    pending = avatar_start_pending(avatar.pk)
    if pending and not ref_file and _job_result(pending).state in _JOB_UNFINISHED and _start_target_serving(pending):
        result = _job_result(pending)
    else:
        placement = placement_choose(avatar)
        job_id = _start_job_new_id(avatar.pk)
        _active_slot_take(avatar, job_id)
        expires = max(60, 3 * timeout)
        reason, routing = "the first live worker free (no worker heartbeat seen yet)", {}
        if placement is not None:
            from celery.utils import worker_direct

            reason, routing = placement.reason, {"queue": worker_direct(placement.hostname)}
            registry.placing_add(placement.channel, avatar.pk, expires)
            client().set(_start_target_key(job_id), placement.channel, ex=int(expires))
        try:
            result = task_send(
                tasks.LIVE_START,
                avatar.pk,
                ref_file,
                engine_url,
                reason,
                task_id=job_id,
                expires=expires,
                **routing,
            )
        except Exception:
            avatar_start_pending_clear(avatar.pk)
            raise
        avatar_event_publish(avatar, "avatar.starting", job={"kind": "start", "job_id": job_id, "status": "starting"})
    if not wait:
        return StartResult(avatar, started=False, job_id=result.id)
    try:
        outcome = result.get(timeout=timeout, propagate=False)
    except CeleryTimeout:
        return StartResult(avatar, started=False, job_id=result.id)
    if not isinstance(outcome, dict):
        raise EngineUnavailable(f"Starting avatar '{avatar.name}' failed on the worker: {outcome}")
    result.forget()
    if outcome.get("status") == "gone":
        raise ObjectNotFound(f"Avatar {avatar.pk} not found.")
    if outcome.get("status") != "active":
        raise NotReady(outcome.get("detail") or f"Avatar '{avatar.name}' could not be started.")
    avatar.refresh_from_db()
    return StartResult(avatar, started=True)


# --- warmed avatars per admin -------------------------------------------------------------
# An admin keeps at most LIVE_MAX_ACTIVE_AVATARS_PER_ADMIN avatars started (served by a live
# worker) or starting. When a start would pass that, the admin's least recently used served
# avatar without open sessions is stopped to make room; when every one has sessions, 429.
# "Used" is a start or a session opened (a Redis sorted set per admin: avatar id -> time).

ACTIVE_RETRY_SECONDS = 60
_USED_TTL = 30 * 24 * 3600


def _used_key(owner_id: int) -> str:
    return redis_key("quota", "live-used", owner_id)


def avatar_live_used(avatar: Avatar) -> None:
    """Remember that the avatar was used now (a start, a session opened)."""
    key = _used_key(avatar_owner_id(avatar))
    with client().pipeline() as pipe:
        pipe.zadd(key, {str(avatar.pk): time.time()})
        pipe.expire(key, _USED_TTL)
        pipe.execute()


def _active_slot_take(avatar: Avatar, job_id: str) -> list[Avatar]:
    """Record the avatar's start job as under way, within the admin's limit of started avatars:
    decided under the admin's lock (the marker is set before it is released, so a concurrent
    start counts this one). Returns the avatars stopped to make room."""
    limit = settings.LIVE_MAX_ACTIVE_AVATARS_PER_ADMIN
    owner_id = avatar_owner_id(avatar)
    stopped: list[Avatar] = []
    with transaction.atomic():
        owner_lock(owner_id)
        if limit > 0:
            others = Avatar.objects.filter(tutor__owner_id=owner_id).exclude(pk=avatar.pk)
            served = [
                a
                for a in others.filter(status=AvatarStatus.ACTIVE).exclude(serving_channel="")
                if registry.worker_alive(a.serving_channel)
            ]
            ready = others.filter(status=AvatarStatus.INACTIVE).values_list("pk", flat=True)
            starting = avatar_start_pending_many(ready)
            excess = len(served) + len(starting) + 1 - limit
            if excess > 0:
                idle = [a for a in served if registry.avatar_session_count(a.pk) == 0]
                if len(idle) < excess:
                    raise TooManyRequests(
                        f"You already have {len(served) + len(starting)} avatars started or starting, the limit per "
                        f"admin (LIVE_MAX_ACTIVE_AVATARS_PER_ADMIN = {limit}), and none can be stopped for "
                        f"'{avatar.name}': each has open live sessions. Close a session or stop an avatar first.",
                        retry_after=ACTIVE_RETRY_SECONDS,
                    )
                with client().pipeline(transaction=False) as pipe:
                    for a in idle:
                        pipe.zscore(_used_key(owner_id), str(a.pk))
                    used = {a.pk: score or 0.0 for a, score in zip(idle, pipe.execute(), strict=True)}
                for victim in sorted(idle, key=lambda a: (used[a.pk], a.pk))[:excess]:
                    # Without waiting for the worker: the decision is made, the lock is short.
                    stopped.append(avatar_stop(avatar=victim, wait=False))
        _start_pending_set(avatar.pk, job_id)
    return stopped


def avatar_live_started(
    avatar_id: int,
    *,
    serving_worker: str,
    serving_channel: str,
    engine_url: str,
    serving_device: str = "",
    placement_reason: str = "",
) -> Avatar | None:
    """Worker side: record the serving worker (name, device, why placement chose it) and set
    `active` (event `avatar.started`). When another live worker that is not draining already
    serves the avatar, it stays with that one (returned, so the caller can tell)."""
    job_id = avatar_start_pending(avatar_id)
    try:
        with transaction.atomic():
            avatar = Avatar.objects.select_for_update().filter(pk=avatar_id).first()
            if avatar is None or not avatar.is_ready:
                return None
            if not (
                avatar.status == AvatarStatus.ACTIVE
                and avatar.serving_channel
                and avatar.serving_channel != serving_channel
                and registry.worker_serving(avatar.serving_channel)
            ):
                avatar.status = AvatarStatus.ACTIVE
                avatar.serving_worker, avatar.serving_channel = serving_worker[:255], serving_channel[:255]
                avatar.serving_device, avatar.serving_reason = serving_device[:32], placement_reason[:255]
                avatar.engine_url = engine_url[:255]
                avatar.error_message = ""
                avatar.save()
    finally:
        # After the row is committed: whoever no longer sees the start under way sees its outcome.
        avatar_start_pending_clear(avatar_id)
        registry.placing_remove(serving_channel, avatar_id)  # its heartbeat shows it from now on
    avatar_event_publish(avatar, "avatar.started", job={"kind": "start", "job_id": job_id, "status": "active"})
    return avatar


def avatar_live_start_failed(avatar_id: int, reason: str) -> Avatar | None:
    """Worker side: a start failed. The reason goes to the avatar's `error_message` (while
    it is ready and not served) and out as the event `avatar.start_failed`."""
    job_id = avatar_start_pending(avatar_id)
    try:
        with transaction.atomic():
            avatar = Avatar.objects.select_for_update().filter(pk=avatar_id).first()
            if avatar is None:
                return None
            if avatar.status == AvatarStatus.INACTIVE:
                avatar.error_message = f"Start failed: {reason}"
                avatar.save(update_fields=["error_message", "updated_at"])
    finally:
        avatar_start_pending_clear(avatar_id)  # after the commit, as in avatar_live_started
    avatar_event_publish(
        avatar, "avatar.start_failed", job={"kind": "start", "job_id": job_id, "status": "failed", "detail": reason}
    )
    return avatar


def avatar_live_move(avatar_id: int) -> str:
    """Worker side, when its worker drains: warm the avatar on another worker (placement), so
    that viewers who open a new session find it there while the old sessions finish. Returns
    the start job's id, or '' when no other worker can take it (it then stops with its worker)."""
    avatar = Avatar.objects.filter(pk=avatar_id, status=AvatarStatus.ACTIVE).first()
    if avatar is None:
        return ""
    try:
        return avatar_start(avatar=avatar).job_id
    except ServiceError as exc:
        logger.info("Avatar %s stays on its draining worker: %s", avatar_id, exc.detail)
        return ""


def avatar_is_served(avatar_id: int) -> bool:
    """Whether a worker may hold the avatar (active, or a serving worker recorded)."""
    from django.db.models import Q

    return Avatar.objects.filter(pk=avatar_id).filter(Q(status=AvatarStatus.ACTIVE) | ~Q(serving_channel="")).exists()


def avatar_stop(*, avatar: Avatar, wait: bool = True) -> Avatar:
    """Close the avatar's sessions and free its memory on the worker; idempotent. With
    `wait`, waits (15 s at most) for the worker to confirm; without, only tells it."""
    with transaction.atomic():
        locked = Avatar.objects.select_for_update().filter(pk=avatar.pk).first()
        if locked is None:
            raise ObjectNotFound(f"Avatar {avatar.pk} not found.")
        channel = locked.serving_channel
        if locked.status == AvatarStatus.ACTIVE:
            locked.status = AvatarStatus.INACTIVE
        locked.serving_worker = locked.serving_channel = locked.engine_url = ""
        locked.serving_device = locked.serving_reason = ""
        locked.save()
    if channel and registry.worker_alive(channel):
        message = {"type": "live.stop_avatar", "avatar_id": locked.pk}
        if wait:
            try:
                live_request(channel, message, timeout=15)
            except EngineUnavailable:
                pass  # the worker died meanwhile: nothing is left to free
        else:
            live_send(channel, message)
    avatar_event_publish(locked)
    return locked


def avatar_live_worker_gone(serving_channel: str, reason: str) -> list[int]:
    """The runtime on `serving_channel` stopped: its avatars are no longer served."""
    ids = []
    for avatar in Avatar.objects.filter(status=AvatarStatus.ACTIVE, serving_channel=serving_channel):
        with transaction.atomic():
            locked = Avatar.objects.select_for_update().get(pk=avatar.pk)
            if locked.status != AvatarStatus.ACTIVE or locked.serving_channel != serving_channel:
                continue
            locked.status = AvatarStatus.INACTIVE
            locked.serving_worker = locked.serving_channel = locked.engine_url = ""
            locked.serving_device = locked.serving_reason = ""
            locked.error_message = f"{reason} Start the avatar again."
            locked.save()
        avatar_event_publish(locked)
        ids.append(locked.pk)
    return ids


def avatar_live_reconcile(avatar_id: int | None = None) -> list[int]:
    """Active avatars whose serving worker stopped beating go back to inactive, with the
    reason; returns their ids. (Avatars set active by hand, without a worker, and workers
    that never beat under this key prefix are left alone: see `workers_known_dead`.)"""
    qs = Avatar.objects.filter(status=AvatarStatus.ACTIVE).exclude(serving_channel="")
    if avatar_id is not None:
        qs = qs.filter(pk=avatar_id)
    serving = dict(qs.values_list("serving_channel", "serving_worker").distinct())
    dead = registry.workers_known_dead(serving)
    reset = []
    for channel in dead:
        reason = f"The lip-sync worker '{serving[channel]}' serving it stopped responding (no heartbeat)."
        reset += avatar_live_worker_gone(channel, reason)
    if avatar_id is None:
        registry.workers_known_forget(dead)  # nothing is left on them
    return reset


# --- signaling relay ---------------------------------------------------------------------


async def live_request_async(channel: str, message: dict, timeout: float | None = None) -> dict:
    """Send `message` to a worker runtime and wait for its reply event."""
    layer = get_channel_layer()
    # The default prefix matters: channels_redis pops one list per prefix, so a reply
    # channel with a prefix of its own starves while a consumer of this process receives.
    reply_to = await layer.new_channel()
    request_id = uuid.uuid4().hex
    await layer.send(channel, {**message, "reply_to": reply_to, "request_id": request_id})
    timeout = settings.LIVE_ANSWER_TIMEOUT if timeout is None else timeout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise EngineUnavailable("The lip-sync worker serving this avatar did not answer in time.")
        try:
            reply = await asyncio.wait_for(layer.receive(reply_to), remaining)
        except TimeoutError:
            continue
        if reply.get("request_id") == request_id:
            return reply["event"]


def live_request(channel: str, message: dict, timeout: float | None = None) -> dict:
    return async_to_sync(live_request_async)(channel, message, timeout)


def live_send(channel: str, message: dict) -> None:
    """Tell a worker runtime something without waiting for an answer."""
    async_to_sync(get_channel_layer().send)(channel, message)


def live_sessions_end_for(user_id: int, avatar_id: int | None = None) -> None:
    """End the live sessions `user_id` opened (of one avatar, or of all) on the workers
    serving them: its access is gone. Sockets close by themselves (their groups); this
    reaches the sessions opened through the HTTP proxy too."""
    if avatar_id is not None:
        channel = Avatar.objects.filter(pk=avatar_id).values_list("serving_channel", flat=True).first()
        channels = [channel] if channel else []
    else:
        channels = list(registry.workers())
    for channel in channels:
        try:
            live_send(channel, {"type": "live.revoke", "user_id": user_id, "avatar_id": avatar_id})
        except Exception:  # a worker gone or Redis away: its sessions end with it
            logger.warning("Could not tell %s to end the sessions of user %s", channel, user_id, exc_info=True)


def live_serving_channel(avatar: Avatar) -> str:
    """The channel of the worker serving the avatar, or a clear NotReady."""
    if avatar.status == AvatarStatus.ACTIVE and avatar.serving_channel:
        facts = registry.worker_facts(avatar.serving_channel)
        if facts is not None and facts.get("draining"):
            raise NotReady(
                f"The worker serving avatar '{avatar.name}' is shutting down; "
                "start the avatar again to move it to another worker."
            )
        if facts is not None:
            return avatar.serving_channel
        avatar_live_reconcile(avatar_id=avatar.pk)
        raise NotReady(f"The worker serving avatar '{avatar.name}' stopped; start the avatar again.")
    raise NotReady(f"Avatar '{avatar.name}' is not started; POST /api/avatars/{avatar.pk}/start first.")


def live_text_validate(text, tts_model=None, voice=None) -> str:
    """Check a `say` before it travels (the worker checks it again through the TTS client)."""
    limit = settings.TTS_MAX_TEXT_CHARS
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("text must be a non-empty string.", field="text")
    if len(text) > limit:
        raise InvalidInput(f"text has at most {limit} characters.", field="text")
    for value, field in ((tts_model, "tts_model"), (voice, "voice")):
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"{field} must be a string.", field=field)
    if tts_model:
        tts_engine_resolve(tts_model)
    return text


def live_question_validate(text) -> str:
    """Check a typed question (`ask`, the proxy's `human` with type 'chat') before it travels."""
    limit = settings.CONVERSATION_MAX_QUESTION_CHARS
    if not isinstance(text, str) or not any(ch.isalnum() for ch in text):
        raise InvalidInput("text must be a question (a non-empty string).", field="text")
    text = text.strip()
    if len(text) > limit:
        raise InvalidInput(
            f"The question is too long: {len(text)} characters, at most {limit} (CONVERSATION_MAX_QUESTION_CHARS).",
            field="text",
        )
    return text


def live_session_for(user, session_id) -> tuple[dict, Avatar]:
    """The session's record when it belongs to an avatar this user may use; else 404."""
    record = registry.session_get(str(session_id or ""))
    if record is None:
        raise ObjectNotFound(f"Session {session_id} not found.")
    avatar = avatar_get_live(user, record["avatar_id"])  # a session of an avatar it cannot use: 404
    return record, avatar


def live_offer_message(user, avatar: Avatar, sdp, sdp_type="offer", events_to: str | None = None) -> tuple[str, dict]:
    """(worker channel, message) for an offer, after checking it."""
    if not isinstance(sdp, str) or "v=0" not in sdp[:200]:
        raise InvalidInput("sdp must be an SDP offer (text starting with 'v=0').", field="sdp")
    if len(sdp) > settings.LIVE_MESSAGE_MAX_BYTES:
        raise InvalidInput("The SDP offer is too large.", field="sdp")
    if sdp_type not in (None, "", "offer"):
        raise InvalidInput("type must be 'offer'.", field="type")
    channel = live_serving_channel(avatar)
    limits = _live_limits(user, avatar)
    avatar_live_used(avatar)
    return channel, {
        "type": "live.offer",
        "avatar_id": avatar.pk,
        # Whose LIVE_MAX_SESSIONS_PER_ADMIN the session counts against: the avatar's admin.
        "user_id": avatar_owner_id(avatar),
        # Who opens it (the owner side or a grantee): the conversation record's `user`.
        "opened_by": getattr(user, "pk", None),
        "sdp": sdp,
        "sdp_type": "offer",
        "events_to": events_to,
        **limits,
    }


def _live_limits(user, avatar: Avatar) -> dict:
    """What the worker enforces for a new session (the per-tutor limits, a session token's),
    after refusing one with no minutes left."""
    from contracts import usage
    from tutors import limits

    tutor = usage_tutor_of(user, avatar)
    limits.live_minutes_check(tutor)
    token = getattr(user, "session_token", None)
    out = {
        "tutor_id": tutor.pk,
        "tutor_max_sessions": limits.tutor_limit(tutor, "max_live_sessions"),
        "tutor_live_seconds": 60 * limits.tutor_limit(tutor, "monthly_live_minutes"),
        "token_id": None,
        "token_max_seconds": 0,
        "token_expires_at": None,
    }
    if token is not None:
        left = max(1, int(token.expires_at.timestamp() - time.time()))
        if token.max_minutes and usage.token_seconds_used(token.pk) >= 60 * token.max_minutes:
            raise TooManyRequests(
                f"This session link has used all of its {token.max_minutes} live minutes (max_minutes); "
                "it does not reset: ask your tutor for a new link.",
                retry_after=left,
                extra={"limit": "max_minutes"},
            )
        out.update(
            token_id=token.pk,
            token_max_seconds=60 * (token.max_minutes or 0),
            token_expires_at=token.expires_at.timestamp(),
        )
    return out


def _refusal(event: dict, default: str):
    """A worker's `error` event as the exception to raise (a limit: 429 with Retry-After)."""
    detail = event.get("detail") or default
    if event.get("status") == TooManyRequests.status_code:
        return TooManyRequests(detail, retry_after=event.get("retry_after") or 30)
    return NotReady(detail)


def live_answer_check(event: dict) -> dict:
    if event.get("type") != "answer":
        raise _refusal(event, "The worker refused the session.")
    return event


def live_offer(user, avatar: Avatar, sdp, sdp_type="offer") -> dict:
    channel, message = live_offer_message(user, avatar, sdp, sdp_type)
    return live_answer_check(live_request(channel, message))


def live_session_request(user, session_id, message: dict) -> dict:
    """Relay a say / interrupt / query to the worker hosting the session (HTTP proxy)."""
    record, avatar = live_session_for(user, session_id)
    if not registry.worker_alive(record["channel"]):
        raise NotReady("The worker hosting this session stopped; open a new session.")
    if message.get("type") == "live.say":
        # Before it travels: past the quota no TTS job starts (with interrupt, none is cancelled).
        tts_chars_charge(avatar_owner_id(avatar), message.get("text") or "")
    elif message.get("type") == "live.ask":
        tts_chars_charge(avatar_owner_id(avatar), message.get("text") or "", at_least=QUESTION_CHARGE_CHARS)
    event = live_request(record["channel"], {**message, "session_id": str(session_id)})
    if event.get("type") == "error":
        raise _refusal(event, "The worker refused the request.")
    return event


# A typed question costs what its answer will: a few sentences of speech (and a responder's
# work), whatever the question's own length.
QUESTION_CHARGE_CHARS = 300


def live_question_charge(user, avatar_id, text: str) -> None:
    """A typed question (`ask`): counted against TTS_MAX_CHARS_PER_MINUTE like the speech
    of its answer, so questions cannot be sent faster than answers may be spoken."""
    live_say_charge(user, avatar_id, text, at_least=QUESTION_CHARGE_CHARS)


def live_say_charge(user, avatar_id, text: str, *, at_least: int = 0) -> None:
    """A `say` on the session WebSocket: count its text against the avatar's admin's
    TTS_MAX_CHARS_PER_MINUTE (429's message, sent back as an `error` event)."""
    tts_chars_charge(avatar_owner_id(avatar_get_live(user, avatar_id)), text, at_least=at_least)
