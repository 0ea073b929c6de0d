"""Offline talking clips of an avatar: request, job state, delete."""

from __future__ import annotations

import os
import uuid

from django.conf import settings
from django.db import transaction

from analytics.services import usage_render_done, usage_render_failed, usage_render_requested
from contracts import media_probe as media
from contracts import tasks
from contracts.tasks import task_send
from tutor_site.exceptions import InvalidMedia, NotReady
from tutors import limits

from .engine_selectors import tts_request_check
from .events import avatar_event_publish
from .models import Avatar, AvatarRender, RenderStatus
from .quotas import avatar_owner_id, owner_lock, renders_queued_check, tts_chars_charge
from .selectors import usage_tutor_for
from .services import UploadSource
from .storage import storage_delete_prefix, storage_save


class _RenderLimits:
    """The voice-probe limits, with the render's own maximum length."""

    VOICE_MAX_UPLOAD_MB = settings.VOICE_MAX_UPLOAD_MB

    @property
    def VOICE_MAX_SECONDS(self):  # mirrors the settings name probe_audio reads
        return settings.RENDER_MAX_SECONDS


def _enqueue(render: AvatarRender) -> None:
    render_id, task_id = render.pk, render.task_id
    transaction.on_commit(lambda: task_send(tasks.RENDER_AVATAR, render_id, task_id, task_id=task_id))


def render_create(
    avatar: Avatar,
    *,
    text: str = "",
    tts_model: str | None = None,
    voice: str = "",
    audio: UploadSource | None = None,
    by=None,
) -> AvatarRender:
    """Queue a talking clip of `avatar` speaking `text` (through TTS) or the uploaded `audio`
    (one or the other: `RenderCreateSerializer` validated the request). Checks here what
    needs the avatar, the media or the engines, and the admin's quotas: queued clips
    (RENDER_MAX_QUEUED_PER_ADMIN) and speech characters (TTS_MAX_CHARS_PER_MINUTE); and the
    requester's tutor's (`by`; without one, the avatar's tutor): monthly render minutes,
    counted from an estimate until the clip is done, and storage for an uploaded audio."""
    if not avatar.is_ready:
        reason = f": {avatar.error_message}" if avatar.error_message else ""
        raise NotReady(f"Avatar '{avatar.name}' is {avatar.status}; it can talk once it is ready{reason}")
    text = (text or "").strip()
    tts_model = tts_model or avatar.tts_model
    voice = (voice or avatar.timbre or "").strip()
    if audio is not None:
        try:
            info = media.probe_audio(audio.path, audio.filename, limits=_RenderLimits())
        except InvalidMedia as exc:
            exc.field = "audio"
            raise
        estimate = limits.render_seconds_estimate(audio_seconds=info.duration)
        upload_bytes = os.path.getsize(audio.path)
    else:
        tts_model, voice, text = tts_request_check(text, tts_model, voice or None)
        estimate, upload_bytes = limits.render_seconds_estimate(text), 0
    owner_id = avatar_owner_id(avatar)
    usage_tutor = usage_tutor_for(by, avatar) if by is not None else avatar.tutor
    with transaction.atomic():
        # The admin's quotas, decided under the admin's lock (see avatars.quotas), then the tutor's.
        owner_lock(owner_id)
        renders_queued_check(owner_id)
        locked_tutor = limits.tutor_lock(usage_tutor.pk)
        limits.render_minutes_check(locked_tutor, estimate)
        if upload_bytes:
            limits.storage_check(locked_tutor, upload_bytes)
        if audio is None:
            tts_chars_charge(owner_id, text)
        render = AvatarRender.objects.create(
            avatar=avatar,
            usage_tutor=locked_tutor,
            estimated_seconds=round(estimate, 3),
            storage_bytes=upload_bytes,
            text=text,
            tts_model="" if audio else tts_model,
            voice="" if audio else voice,
            task_id=str(uuid.uuid4()),
            progress_message="Waiting for a lip-sync worker",
        )
        if audio is not None:
            ext = os.path.splitext(audio.filename)[1].lower()
            try:
                render.audio_source_path = storage_save(f"{render.storage_prefix}/speech{ext}", audio.path)
            except Exception:
                storage_delete_prefix(render.storage_prefix)
                raise
            render.save(update_fields=["audio_source_path", "updated_at"])
        _enqueue(render)
        usage_render_requested(render.pk, getattr(by, "pk", None))
    return render


def render_delete(render: AvatarRender) -> None:
    prefix = render.storage_prefix
    render.delete()
    transaction.on_commit(lambda: storage_delete_prefix(prefix))


# --- Job state reported by the lipsync worker ------------------------------------------


def _live(render_id: int, task_id: str):
    return AvatarRender.objects.filter(
        pk=render_id, task_id=task_id, status__in=[RenderStatus.QUEUED, RenderStatus.PROCESSING]
    )


def render_job_is_current(render_id: int, task_id: str) -> bool:
    return _live(render_id, task_id).exists()


def render_progress_set(render_id: int, task_id: str, percent: int, message: str) -> None:
    updated = _live(render_id, task_id).update(
        status=RenderStatus.PROCESSING, progress_percent=max(0, min(99, int(percent))), progress_message=message[:255]
    )
    if updated:
        _publish(render_id, "render.progress")


def render_succeeded(render_id: int, task_id: str, *, video_path: str, frame_count: int, duration: float) -> bool:
    from django.core.files.storage import default_storage
    from django.db.models import F

    try:  # the clip is stored for its tutor too (tutors.limits: max_storage_mb)
        clip_bytes = default_storage.size(video_path)
    except Exception:  # noqa: BLE001 - a size unknown is not a failed render
        clip_bytes = 0
    updated = _live(render_id, task_id).update(
        storage_bytes=F("storage_bytes") + clip_bytes,
        status=RenderStatus.DONE,
        video_path=video_path,
        frame_count=frame_count,
        duration_seconds=round(duration, 3),
        progress_percent=100,
        progress_message="Done",
        error_message="",
    )
    if updated:
        _publish(render_id, "render.done")
        usage_render_done(render_id, seconds=duration)
    return bool(updated)


def render_failed(render_id: int, task_id: str, reason: str) -> bool:
    updated = _live(render_id, task_id).update(
        status=RenderStatus.ERROR, error_message=reason, progress_message="Failed"
    )
    if updated:
        _publish(render_id, "render.error")
        usage_render_failed(render_id, reason)
    return bool(updated)


def _publish(render_id: int, event: str) -> None:
    render = AvatarRender.objects.select_related("avatar").filter(pk=render_id).first()
    if render is not None:
        avatar_event_publish(render.avatar, event)
