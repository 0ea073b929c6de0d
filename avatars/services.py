"""Avatar writes: create, update, delete, reprocess, and the job state the worker reports.

The API, the admin and the batch command all call these, so they cannot disagree.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from analytics.services import usage_preprocess_failed
from contracts import media_probe as media
from contracts import tasks
from contracts.tasks import task_send
from tutor_site.exceptions import InvalidInput, InvalidMedia, NameTaken, NotReady, ObjectNotFound
from tutors import limits
from tutors.models import Tutor, User
from tutors.selectors import tutor_get

from .engine_selectors import asr_engine_resolve, lipsync_engine_resolve, responder_resolve, tts_engine_resolve
from .events import avatar_event_publish
from .models import Avatar, AvatarStatus
from .quotas import owner_lock, preprocessing_check
from .selectors import avatar_access_check
from .storage import storage_delete_prefix, storage_save

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadSource:
    """An uploaded or local file: where it is now, and the name the client gave it."""

    path: str
    filename: str


def _name_taken(name: str) -> NameTaken:
    return NameTaken(f"An avatar named '{name}' already exists; choose another name.", field="name")


def _name_free(owner_id: int, name: str) -> None:
    """Names are unique per admin (another admin's names are none of this one's business)."""
    if Avatar.objects.filter(owner_id=owner_id, name=name).exists():
        raise _name_taken(name)


def _enqueue_preprocess(avatar: Avatar) -> None:
    avatar_id, task_id = avatar.pk, avatar.task_id
    transaction.on_commit(lambda: task_send(tasks.PREPROCESS_AVATAR, avatar_id, task_id, task_id=task_id))


@dataclass(frozen=True)
class AvatarCreateChecked:
    """What `avatar_create_check` found: the tutor, the engines resolved, the video's facts."""

    tutor: Tutor
    avatar_model: str
    tts_model: str
    video_info: object


def avatar_create_check(
    *,
    user: User,
    tutor_id: int,
    name: str,
    prompt_face: UploadSource,
    prompt_voice: UploadSource | None = None,
    avatar_model: str | None = None,
    tts_model: str | None = None,
    support_clone: bool | None = None,
    template_id: int | None = None,
    **_fields,
) -> AvatarCreateChecked:
    """The checks of a create that need the database or the media, writing nothing: the
    tutor is one the user may use, the name is free, the engines can run here, the uploads
    are media we accept. The fields themselves were validated by `AvatarCreateSerializer`."""
    if template_id is not None:  # the template's set-up first (avatar_templates.services)
        from avatar_templates.services import avatar_create_from_template

        return avatar_create_from_template(
            user=user,
            template_id=template_id,
            check_only=True,
            tutor_id=tutor_id,
            name=name,
            prompt_face=prompt_face,
            prompt_voice=prompt_voice,
            avatar_model=avatar_model,
            tts_model=tts_model,
            support_clone=support_clone,
            **_fields,
        )
    try:
        tutor = tutor_get(user, tutor_id)
    except ObjectNotFound as exc:
        exc.field = "tutor_id"
        raise
    preprocessing_check(tutor.owner_id)  # before the media are probed; again under the lock when creating
    limits.avatars_check(tutor)
    limits.storage_check(tutor, _upload_bytes(prompt_face, prompt_voice))
    _name_free(tutor.owner_id, name)
    avatar_model = lipsync_engine_resolve(avatar_model)
    tts_model = tts_engine_resolve(tts_model, support_clone=support_clone)
    try:
        video_info = media.probe_video(prompt_face.path, prompt_face.filename, limits=settings)
    except InvalidMedia as exc:
        exc.field = "prompt_face"
        raise
    if prompt_voice is not None:
        try:
            media.probe_audio(prompt_voice.path, prompt_voice.filename, limits=settings)
        except InvalidMedia as exc:
            exc.field = "prompt_voice"
            raise
    return AvatarCreateChecked(tutor=tutor, avatar_model=avatar_model, tts_model=tts_model, video_info=video_info)


def avatar_create(
    *,
    user: User,
    tutor_id: int,
    name: str,
    prompt_face: UploadSource,
    prompt_voice: UploadSource | None = None,
    display_name: str = "",
    description: str = "",
    avatar_model: str | None = None,
    tts_model: str | None = None,
    timbre: str = "",
    avatar_blur: bool | None = None,
    support_clone: bool | None = None,
    persona: str = "",
    greeting: str = "",
    language: str = "",
    asr_model: str | None = None,
    llm_model: str | None = None,
    template_id: int | None = None,
) -> Avatar:
    """Check (`avatar_create_check`), store the uploads under generated names, enqueue
    preprocessing. The arguments are `AvatarCreateSerializer`'s validated data; None or
    blank means not given (the default, or the template's value with `template_id`)."""
    given = dict(locals())  # first statement: exactly the arguments, for the template's merge
    if template_id is not None:
        from avatar_templates.services import avatar_create_from_template

        del given["user"], given["template_id"]
        return avatar_create_from_template(user=user, template_id=template_id, **given)
    conversation = {
        "persona": persona,
        "greeting": greeting,
        "language": language or "en",
        "asr_model": asr_engine_resolve(asr_model),
        "llm_model": responder_resolve(llm_model),
    }
    checked = avatar_create_check(
        user=user,
        tutor_id=tutor_id,
        name=name,
        prompt_face=prompt_face,
        prompt_voice=prompt_voice,
        avatar_model=avatar_model,
        tts_model=tts_model,
        support_clone=support_clone,
    )
    video_info = checked.video_info
    fields = {
        "display_name": display_name or name,
        "description": description,
        "timbre": timbre,
        "avatar_model": checked.avatar_model,
        "tts_model": checked.tts_model,
        **conversation,
    }
    tutor = checked.tutor
    stored: list[str] = []
    try:
        with transaction.atomic():
            owner_lock(tutor.owner_id)  # the count and the new row in one step per admin (avatars.quotas)
            preprocessing_check(tutor.owner_id)
            # The tutor's limits, in the same step (after the admin's lock: one order everywhere).
            locked_tutor = limits.tutor_lock(tutor.pk)
            limits.avatars_check(locked_tutor)
            limits.storage_check(locked_tutor, _upload_bytes(prompt_face, prompt_voice))
            avatar = Avatar.objects.create(
                tutor=tutor,
                owner_id=tutor.owner_id,
                name=name,
                avatar_blur=bool(avatar_blur),
                support_clone=bool(support_clone),
                status=AvatarStatus.PROCESSING,
                progress_stage="queued",
                progress_message="Waiting for a lip-sync worker",
                task_id=str(uuid.uuid4()),
                width=video_info.width,
                height=video_info.height,
                duration_seconds=round(video_info.duration, 3),
                storage_bytes=_upload_bytes(prompt_face, prompt_voice),
                **fields,
            )
            ext = os.path.splitext(prompt_face.filename)[1].lower()
            avatar.video_path = storage_save(f"{avatar.storage_prefix}/source/video{ext}", prompt_face.path)
            stored.append(avatar.video_path)
            if prompt_voice is not None:
                ext = os.path.splitext(prompt_voice.filename)[1].lower()
                avatar.audio_path = storage_save(f"{avatar.storage_prefix}/source/voice{ext}", prompt_voice.path)
                stored.append(avatar.audio_path)
            avatar.save(update_fields=["video_path", "audio_path", "updated_at"])
            _enqueue_preprocess(avatar)
    except Exception as exc:
        if stored:
            storage_delete_prefix(stored[0].rsplit("/source/", 1)[0])
        if isinstance(exc, IntegrityError) and _is_name_clash(exc):
            raise _name_taken(name) from None  # a concurrent create took the name first
        raise
    return avatar


def _upload_bytes(*sources: UploadSource | None) -> int:
    return sum(os.path.getsize(source.path) for source in sources if source is not None)


def _is_name_clash(exc: IntegrityError) -> bool:
    text = str(exc)
    return "avatar_name_unique_per_admin" in text or "avatars_avatar.owner_id, avatars_avatar.name" in text


def avatar_update(
    avatar: Avatar,
    *,
    display_name: str | None = None,
    description: str | None = None,
    timbre: str | None = None,
    avatar_blur: bool | None = None,
    status: str | None = None,
    persona: str | None = None,
    greeting: str | None = None,
    language: str | None = None,
    asr_model: str | None = None,
    llm_model: str | None = None,
) -> Avatar:
    """Change what PATCH may change (None: leave as is); `AvatarUpdateSerializer` validated
    the values. A blank display name falls back to the name (a blank language to English,
    blank engines to the defaults); only a ready avatar changes status. A conversation
    setting applies to the avatar's next live session. A new `avatar_blur` is applied to
    the frames themselves, so it reprocesses the video (`_blur_reprocess`)."""
    changes = {
        key: value
        for key, value in (
            ("description", description),
            ("timbre", timbre),
            ("avatar_blur", avatar_blur),
            ("status", status),
            ("persona", persona),
            ("greeting", greeting),
            ("language", None if language is None else language or "en"),
            ("asr_model", None if asr_model is None else asr_engine_resolve(asr_model)),
            ("llm_model", None if llm_model is None else responder_resolve(llm_model)),
        )
        if value is not None
    }
    with transaction.atomic():
        owner_id = None
        if avatar_blur is not None:  # may reprocess: the admin's lock first, as avatar_reprocess
            owner_id = Avatar.objects.filter(pk=avatar.pk).values_list("tutor__owner_id", flat=True).first()
            if owner_id is not None:
                owner_lock(owner_id)
        locked = Avatar.objects.select_for_update().filter(pk=avatar.pk).first()
        if locked is None:
            raise ObjectNotFound(f"Avatar {avatar.pk} not found.")
        if status is not None and not locked.is_ready:
            raise NotReady(f"Avatar '{locked.name}' is {locked.status}; only a ready avatar can change status.")
        blur_changed = avatar_blur is not None and avatar_blur != locked.avatar_blur
        if blur_changed:
            _blur_change_check(avatar, locked, status_given=status is not None)
        if display_name is not None:
            changes["display_name"] = display_name or locked.name
        for key, value in changes.items():
            setattr(locked, key, value)
        if blur_changed:
            _blur_reprocess(locked, owner_id)
        locked.save()
        if blur_changed:
            _enqueue_preprocess(locked)
    avatar_event_publish(locked)
    return locked


def _blur_change_check(avatar: Avatar, locked: Avatar, *, status_given: bool) -> None:
    """A blur change reprocesses the video: the rules of `avatar_reprocess`, said for the blur."""
    if getattr(avatar, "access_level", None) is not None:  # read through the selectors: a grantee
        avatar_access_check(avatar, "own", "change its background blur (that reprocesses its video)")
    if status_given:
        raise InvalidInput("avatar_blur reprocesses the video; change status in another request.", field="avatar_blur")
    if locked.status == AvatarStatus.ACTIVE:
        raise NotReady(
            f"Avatar '{locked.name}' is active; stop it before changing avatar_blur (the video is processed again).",
            field="avatar_blur",
        )
    if not locked.video_path:
        raise NotReady(f"Avatar '{locked.name}' has no source video to process.", field="avatar_blur")


def _blur_reprocess(locked: Avatar, owner_id: int | None) -> None:
    """Queue preprocessing again with the new blur. A job already under way is replaced (it
    finds itself stale and drops its results), so the latest setting is the one applied."""
    if locked.status != AvatarStatus.PROCESSING:
        preprocessing_check(owner_id, excluding=locked.pk)
    _preprocess_queued(locked)


def avatar_delete(avatar: Avatar) -> None:
    """Stop the avatar's live sessions and free its worker (when one serves it), delete the
    row and, once that is committed, every file it has. An avatar no worker serves is
    deleted without waiting on anything."""
    from .live_services import avatar_is_served, avatar_start_pending_clear, avatar_stop

    if avatar_is_served(avatar.pk):
        avatar_stop(avatar=avatar)
    prefix, avatar_id = avatar.storage_prefix, avatar.pk
    avatar.delete()
    avatar_start_pending_clear(avatar_id)
    transaction.on_commit(lambda: storage_delete_prefix(prefix))


def avatar_reprocess(avatar: Avatar) -> Avatar:
    with transaction.atomic():
        owner_id = Avatar.objects.filter(pk=avatar.pk).values_list("tutor__owner_id", flat=True).first()
        if owner_id is not None:
            owner_lock(owner_id)  # before the avatar's row: the order avatar_create locks in
        locked = Avatar.objects.select_for_update().get(pk=avatar.pk)
        if locked.status == AvatarStatus.PROCESSING:
            raise NotReady(f"Avatar '{locked.name}' is already being processed.")
        if locked.status == AvatarStatus.ACTIVE:
            raise NotReady(f"Avatar '{locked.name}' is active; stop it before reprocessing.")
        if not locked.video_path:
            raise NotReady(f"Avatar '{locked.name}' has no source video to process.")
        preprocessing_check(owner_id, excluding=locked.pk)
        _preprocess_queued(locked)
        locked.save()
        _enqueue_preprocess(locked)
    avatar_event_publish(locked)
    return locked


def _preprocess_queued(locked: Avatar) -> None:
    """The locked row as a new preprocessing job waiting for a worker (saved by the caller)."""
    locked.status = AvatarStatus.PROCESSING
    locked.task_id = str(uuid.uuid4())
    locked.progress_stage, locked.progress_percent = "queued", 0
    locked.progress_message = "Waiting for a lip-sync worker"
    locked.error_message = ""


# --- Job state reported by the lipsync worker ------------------------------------------


def _current_job(avatar_id: int, task_id: str):
    """The avatar row locked, if this task is still the one it waits for."""
    avatar = Avatar.objects.select_for_update().filter(pk=avatar_id).first()
    if avatar is None or avatar.task_id != task_id or avatar.status != AvatarStatus.PROCESSING:
        return None
    return avatar


def avatar_job_is_current(avatar_id: int, task_id: str) -> bool:
    return Avatar.objects.filter(pk=avatar_id, task_id=task_id, status=AvatarStatus.PROCESSING).exists()


def avatar_progress_set(avatar_id: int, task_id: str, stage: str, percent: int, message: str = "") -> bool:
    """Record a job's progress; False when the job is no longer the avatar's current one
    (deleted, reprocessed, or replaced by a change of `avatar_blur`): the job may stop."""
    updated = Avatar.objects.filter(pk=avatar_id, task_id=task_id, status=AvatarStatus.PROCESSING).update(
        progress_stage=stage[:40], progress_percent=max(0, min(100, int(percent))), progress_message=message[:255]
    )
    if updated:
        avatar_event_publish(Avatar.objects.get(pk=avatar_id), "avatar.progress")
    return bool(updated)


def avatar_preprocess_succeeded(
    avatar_id: int,
    task_id: str,
    *,
    assets_path: str,
    preview_image_path: str,
    frame_count: int,
    width: int,
    height: int,
    voice_reference_path: str = "",
) -> str | None:
    """Point the avatar at its new assets. Returns the old assets prefix to delete, or
    raises `StaleJob` when the avatar was deleted or reprocessed meanwhile."""
    with transaction.atomic():
        avatar = _current_job(avatar_id, task_id)
        if avatar is None:
            raise StaleJob()
        old_assets = avatar.assets_path
        avatar.assets_path = assets_path
        avatar.preview_image_path = preview_image_path
        avatar.voice_reference_path = voice_reference_path
        avatar.frame_count, avatar.width, avatar.height = frame_count, width, height
        avatar.duration_seconds = round(frame_count / media.TARGET_FPS, 3)
        avatar.status = AvatarStatus.INACTIVE
        avatar.progress_stage, avatar.progress_percent, avatar.progress_message = "done", 100, "Ready"
        avatar.error_message = ""
        avatar.save()
    avatar_event_publish(avatar, "avatar.ready")
    return old_assets if old_assets != assets_path else None


def avatar_preprocess_failed(avatar_id: int, task_id: str, reason: str) -> bool:
    with transaction.atomic():
        avatar = _current_job(avatar_id, task_id)
        if avatar is None:
            return False
        avatar.status = AvatarStatus.ERROR
        avatar.error_message = reason
        avatar.progress_message = "Failed"
        avatar.save()
    avatar_event_publish(avatar, "avatar.error")
    usage_preprocess_failed(avatar_id, reason)
    return True


class StaleJob(Exception):
    """The avatar this job worked for was deleted or reprocessed: drop the results."""
