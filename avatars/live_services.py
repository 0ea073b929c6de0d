"""Live sessions, web side: start and stop avatars, find their serving worker, relay
signaling to it over the channel layer, and notice workers that died.

The worker side records itself through `avatar_live_started` and `avatar_live_worker_gone`.
"""
from __future__ import annotations

import asyncio
import posixpath
import uuid
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from lipsync_worker.live import registry
from tutor_site.exceptions import EngineUnavailable, InvalidInput, NotReady, ObjectNotFound

from .events import avatar_event_publish
from .models import Avatar, AvatarStatus
from .selectors import avatar_get


@dataclass
class StartResult:
    avatar: Avatar
    started: bool
    job_id: str = ""


def _not_startable(avatar: Avatar) -> NotReady | None:
    if avatar.status == AvatarStatus.PROCESSING:
        return NotReady(f"Avatar '{avatar.name}' is still being processed ({avatar.progress_percent}%); "
                        "start it when it is ready.")
    if avatar.status == AvatarStatus.ERROR:
        return NotReady(f"Avatar '{avatar.name}' failed processing and cannot be started: "
                        f"{avatar.error_message or 'unknown reason'}. Reprocess it or upload another video.")
    if not avatar.assets_path:
        return NotReady(f"Avatar '{avatar.name}' has no processed assets; reprocess it first.")
    return None


def avatar_is_serving(avatar: Avatar) -> bool:
    return avatar.status == AvatarStatus.ACTIVE and registry.worker_alive(avatar.engine_channel)


def avatar_reference_for_start(avatar: Avatar, ref_file: str | None) -> tuple[str, str]:
    """The voice-cloning reference for the avatar's sessions: its own unless `ref_file`
    names another audio file of this avatar in storage (never a path outside it)."""
    from tts_worker.services import avatar_voice_reference

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


def avatar_start(*, avatar: Avatar, ref_file: str | None = None, engine_url: str = "",
                 timeout: float | None = None) -> StartResult:
    """Warm the avatar on a lip-sync worker and wait (up to AVATAR_START_TIMEOUT) for it.
    Idempotent: an avatar already served by a live worker is answered at once."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    from lipsync_worker.tasks import live_start_task

    avatar_live_reconcile(avatar_id=avatar.pk)
    avatar.refresh_from_db()
    problem = _not_startable(avatar)
    if problem:
        raise problem
    if avatar_is_serving(avatar):
        return StartResult(avatar, started=True)
    ref_file = avatar_reference_for_start(avatar, ref_file)[0] if ref_file else ""
    timeout = settings.AVATAR_START_TIMEOUT if timeout is None else timeout
    result = live_start_task.apply_async(args=[avatar.pk, ref_file, engine_url], expires=max(60, 3 * timeout))
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


def avatar_live_started(avatar_id: int, *, engine: str, engine_channel: str, engine_url: str) -> Avatar | None:
    """Worker side: record the serving worker and set `active`. When another live worker
    already serves the avatar, it stays with that one (returned, so the caller can tell)."""
    with transaction.atomic():
        avatar = Avatar.objects.select_for_update().filter(pk=avatar_id).first()
        if avatar is None or not avatar.is_ready:
            return None
        if (avatar.status == AvatarStatus.ACTIVE and avatar.engine_channel
                and avatar.engine_channel != engine_channel and registry.worker_alive(avatar.engine_channel)):
            return avatar
        avatar.status = AvatarStatus.ACTIVE
        avatar.engine, avatar.engine_channel = engine[:255], engine_channel[:255]
        avatar.engine_url = engine_url[:255]
        avatar.error_message = ""
        avatar.save()
    avatar_event_publish(avatar)
    return avatar


def avatar_stop(*, avatar: Avatar) -> Avatar:
    """Close the avatar's sessions and free its memory on the worker; idempotent."""
    with transaction.atomic():
        locked = Avatar.objects.select_for_update().get(pk=avatar.pk)
        channel = locked.engine_channel
        if locked.status == AvatarStatus.ACTIVE:
            locked.status = AvatarStatus.INACTIVE
        locked.engine = locked.engine_channel = locked.engine_url = ""
        locked.save()
    if channel and registry.worker_alive(channel):
        try:
            live_request(channel, {"type": "live.stop_avatar", "avatar_id": locked.pk}, timeout=15)
        except EngineUnavailable:
            pass  # the worker died meanwhile: nothing is left to free
    avatar_event_publish(locked)
    return locked


def avatar_live_worker_gone(engine_channel: str, reason: str) -> list[int]:
    """The runtime on `engine_channel` stopped: its avatars are no longer served."""
    ids = []
    for avatar in Avatar.objects.filter(status=AvatarStatus.ACTIVE, engine_channel=engine_channel):
        with transaction.atomic():
            locked = Avatar.objects.select_for_update().get(pk=avatar.pk)
            if locked.status != AvatarStatus.ACTIVE or locked.engine_channel != engine_channel:
                continue
            locked.status = AvatarStatus.INACTIVE
            locked.engine = locked.engine_channel = locked.engine_url = ""
            locked.error_message = f"{reason} Start the avatar again."
            locked.save()
        avatar_event_publish(locked)
        ids.append(locked.pk)
    return ids


def avatar_live_reconcile(avatar_id: int | None = None) -> list[int]:
    """Active avatars whose serving worker has no heartbeat any more go back to inactive,
    with the reason; returns their ids. (Avatars set active by hand, without a worker,
    are left alone.)"""
    qs = Avatar.objects.filter(status=AvatarStatus.ACTIVE).exclude(engine_channel="")
    if avatar_id is not None:
        qs = qs.filter(pk=avatar_id)
    reset = []
    for channel, engine in set(qs.values_list("engine_channel", "engine")):
        if not registry.worker_alive(channel):
            reset += avatar_live_worker_gone(
                channel, f"The lip-sync worker '{engine}' serving it stopped responding (no heartbeat).")
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
        except asyncio.TimeoutError:
            continue
        if reply.get("request_id") == request_id:
            return reply["event"]


def live_request(channel: str, message: dict, timeout: float | None = None) -> dict:
    return async_to_sync(live_request_async)(channel, message, timeout)


def live_serving_channel(avatar: Avatar) -> str:
    """The channel of the worker serving the avatar, or a clear NotReady."""
    if avatar.status == AvatarStatus.ACTIVE and avatar.engine_channel:
        if registry.worker_alive(avatar.engine_channel):
            return avatar.engine_channel
        avatar_live_reconcile(avatar_id=avatar.pk)
        raise NotReady(f"The worker serving avatar '{avatar.name}' stopped; start the avatar again.")
    raise NotReady(f"Avatar '{avatar.name}' is not started; POST /api/avatars/{avatar.pk}/start first.")


def live_text_validate(text, tts_model=None, voice=None) -> str:
    """Check a `say` before it travels (the worker checks it again through the TTS client)."""
    # Settings, not tts_worker.services: importing the engines would cost the first say a second.
    limit = settings.TTS_MAX_TEXT_CHARS
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("text must be a non-empty string.", field="text")
    if len(text) > limit:
        raise InvalidInput(f"text has at most {limit} characters.", field="text")
    for value, field in ((tts_model, "tts_model"), (voice, "voice")):
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"{field} must be a string.", field=field)
    if tts_model:
        from avatars.models import TTSModel

        if tts_model not in TTSModel.values:
            raise InvalidInput(f"Unknown tts_model '{tts_model}'; choose one of: {', '.join(TTSModel.values)}.",
                               field="tts_model")
    return text


def live_session_for(user, session_id) -> tuple[dict, Avatar]:
    """The session's record when it belongs to an avatar this user may use; else 404."""
    record = registry.session_get(str(session_id or ""))
    if record is None:
        raise ObjectNotFound(f"Session {session_id} not found.")
    avatar = avatar_get(user, record["avatar_id"])  # another admin's session: 404 like its avatar
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
    return channel, {"type": "live.offer", "avatar_id": avatar.pk, "user_id": user.pk, "sdp": sdp,
                     "sdp_type": "offer", "events_to": events_to}


def live_answer_check(event: dict) -> dict:
    if event.get("type") != "answer":
        raise NotReady(event.get("detail") or "The worker refused the session.")
    return event


def live_offer(user, avatar: Avatar, sdp, sdp_type="offer") -> dict:
    channel, message = live_offer_message(user, avatar, sdp, sdp_type)
    return live_answer_check(live_request(channel, message))


def live_session_request(user, session_id, message: dict) -> dict:
    """Relay a say / interrupt / query to the worker hosting the session (HTTP proxy)."""
    record, _avatar = live_session_for(user, session_id)
    if not registry.worker_alive(record["channel"]):
        raise NotReady("The worker hosting this session stopped; open a new session.")
    event = live_request(record["channel"], {**message, "session_id": str(session_id)})
    if event.get("type") == "error":
        raise NotReady(event.get("detail") or "The worker refused the request.")
    return event
