"""Avatar writes: create, update, delete, reprocess, and the job state the worker reports.

The API, the admin and the batch command all call these, so they cannot disagree.
"""
from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from lipsync_worker import media
from tutor_site.exceptions import InvalidInput, InvalidMedia, NameTaken, NotReady
from tutors.models import User
from tutors.selectors import tutor_get

from .events import avatar_event_publish
from .models import AVATAR_NAME_VALIDATOR, Avatar, AvatarModel, AvatarStatus, TTSModel
from .storage import storage_delete_prefix, storage_save

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadSource:
    """An uploaded or local file: where it is now, and the name the client gave it."""

    path: str
    filename: str


def _bool(value, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise InvalidInput(f"{field} must be true or false.", field=field)


def _choice(value, choices, field: str) -> str:
    valid = [c for c, _ in choices]
    if value not in valid:
        raise InvalidInput(f"Unknown {field} '{value}'; choose one of: {', '.join(valid)}.", field=field)
    return value


def _text(value, field: str, max_length: int) -> str:
    text = "" if value is None else str(value).strip()
    if len(text) > max_length:
        raise InvalidInput(f"{field} has at most {max_length} characters.", field=field)
    return text


def _avatar_model_resolve(requested: str | None) -> str:
    from lipsync_worker.engines import engine_availability, engine_default

    if requested in (None, ""):
        return engine_default()
    _choice(requested, AvatarModel.choices, "avatar_model")
    available, reason = engine_availability(requested)
    if not available:
        raise InvalidInput(f"The lip-sync engine '{requested}' cannot be used here: {reason}", field="avatar_model")
    return requested


def _tts_model_resolve(requested: str | None, support_clone: bool) -> str:
    tts_model = _choice(requested or settings.DEFAULT_TTS_MODEL, TTSModel.choices, "tts_model")
    if support_clone:
        from tts_worker.services import clone_engine_names

        cloners = clone_engine_names()
        if tts_model not in cloners:
            raise InvalidInput(
                f"The TTS engine '{tts_model}' cannot clone voices; engines that can: {', '.join(cloners) or 'none'}.",
                field="support_clone",
            )
    return tts_model


def _name_check(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("An avatar needs a name (letters, digits, '_' and '-').", field="name")
    if len(name) > 64:
        raise InvalidInput("An avatar name has at most 64 characters.", field="name")
    try:
        AVATAR_NAME_VALIDATOR(name)
    except ValidationError as exc:
        raise InvalidInput(exc.messages[0], field="name") from None
    if Avatar.objects.filter(name=name).exists():
        raise NameTaken(f"An avatar named '{name}' already exists; choose another name.", field="name")
    return name


def _enqueue_preprocess(avatar: Avatar) -> None:
    from lipsync_worker.tasks import preprocess_avatar_task

    avatar_id, task_id = avatar.pk, avatar.task_id
    transaction.on_commit(
        lambda: preprocess_avatar_task.apply_async(args=[avatar_id, task_id], task_id=task_id)
    )


# Optional avatar_create arguments that forms, the API and the batch command pass through.
AVATAR_CREATE_OPTIONS = (
    "display_name", "description", "avatar_model", "tts_model", "timbre", "avatar_blur", "support_clone",
)


def avatar_create_options(data) -> dict:
    """The optional create arguments present (and not blank) in submitted data."""
    return {key: data[key] for key in AVATAR_CREATE_OPTIONS if data.get(key) not in (None, "")}


def avatar_create(
    *,
    user: User,
    tutor_id,
    name: str,
    prompt_face: UploadSource | None,
    prompt_voice: UploadSource | None = None,
    display_name: str = "",
    description: str = "",
    avatar_model: str | None = None,
    tts_model: str | None = None,
    timbre: str = "",
    avatar_blur=False,
    support_clone=False,
) -> Avatar:
    """Validate everything, store the uploads under generated names, enqueue preprocessing."""
    tutor = tutor_get(user, tutor_id)
    name = _name_check(name)
    avatar_blur = _bool(avatar_blur, "avatar_blur")
    support_clone = _bool(support_clone, "support_clone")
    fields = {
        "display_name": _text(display_name, "display_name", 120) or name,
        "description": _text(description, "description", 5000),
        "timbre": _text(timbre, "timbre", 120),
        "avatar_model": _avatar_model_resolve(avatar_model),
        "tts_model": _tts_model_resolve(tts_model, support_clone),
    }
    if prompt_face is None:
        raise InvalidInput("prompt_face (the tutor's video) is required.", field="prompt_face")
    try:
        video_info = media.probe_video(prompt_face.path, prompt_face.filename, limits=settings)
    except InvalidMedia as exc:
        exc.field = "prompt_face"
        raise
    if support_clone and prompt_voice is None:
        raise InvalidInput("Voice cloning needs a prompt_voice recording.", field="prompt_voice")
    if prompt_voice is not None:
        try:
            media.probe_audio(prompt_voice.path, prompt_voice.filename, limits=settings)
        except InvalidMedia as exc:
            exc.field = "prompt_voice"
            raise

    stored: list[str] = []
    try:
        with transaction.atomic():
            avatar = Avatar.objects.create(
                tutor=tutor,
                name=name,
                avatar_blur=avatar_blur,
                support_clone=support_clone,
                status=AvatarStatus.PROCESSING,
                progress_stage="queued",
                progress_message="Waiting for a lip-sync worker",
                task_id=str(uuid.uuid4()),
                width=video_info.width,
                height=video_info.height,
                duration_seconds=round(video_info.duration, 3),
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
    except Exception:
        if stored:
            storage_delete_prefix(stored[0].rsplit("/source/", 1)[0])
        raise
    return avatar


# What PATCH may change; everything else the contract shows is read-only.
AVATAR_EDITABLE_FIELDS = {"display_name", "description", "timbre", "avatar_blur", "status"}


def avatar_update(avatar: Avatar, data: dict) -> Avatar:
    forbidden = sorted(set(data) - AVATAR_EDITABLE_FIELDS)
    if forbidden:
        raise InvalidInput(
            f"These fields cannot be changed: {', '.join(forbidden)}. "
            f"Editable fields: {', '.join(sorted(AVATAR_EDITABLE_FIELDS))}.",
            field=forbidden[0],
        )
    changes = {}
    if "display_name" in data:
        changes["display_name"] = _text(data["display_name"], "display_name", 120) or avatar.name
    if "description" in data:
        changes["description"] = _text(data["description"], "description", 5000)
    if "timbre" in data:
        changes["timbre"] = _text(data["timbre"], "timbre", 120)
    if "avatar_blur" in data:
        changes["avatar_blur"] = _bool(data["avatar_blur"], "avatar_blur")
    if "status" in data:
        wanted = data["status"]
        if wanted not in (AvatarStatus.ACTIVE, AvatarStatus.INACTIVE):
            raise InvalidInput("status can only be set to 'active' or 'inactive'.", field="status")
        if not avatar.is_ready:
            raise NotReady(f"Avatar '{avatar.name}' is {avatar.status}; only a ready avatar can change status.")
        changes["status"] = wanted
    with transaction.atomic():
        locked = Avatar.objects.select_for_update().get(pk=avatar.pk)
        if "status" in changes and not locked.is_ready:
            raise NotReady(f"Avatar '{locked.name}' is {locked.status}; only a ready avatar can change status.")
        for key, value in changes.items():
            setattr(locked, key, value)
        locked.save()
    avatar_event_publish(locked)
    return locked


def avatar_delete(avatar: Avatar) -> None:
    """Delete the avatar and, once that is committed, every file it has."""
    prefix = avatar.storage_prefix
    avatar.delete()
    transaction.on_commit(lambda: storage_delete_prefix(prefix))


def avatar_reprocess(avatar: Avatar) -> Avatar:
    with transaction.atomic():
        locked = Avatar.objects.select_for_update().get(pk=avatar.pk)
        if locked.status == AvatarStatus.PROCESSING:
            raise NotReady(f"Avatar '{locked.name}' is already being processed.")
        if locked.status == AvatarStatus.ACTIVE:
            raise NotReady(f"Avatar '{locked.name}' is active; stop it before reprocessing.")
        if not locked.video_path:
            raise NotReady(f"Avatar '{locked.name}' has no source video to process.")
        locked.status = AvatarStatus.PROCESSING
        locked.task_id = str(uuid.uuid4())
        locked.progress_stage, locked.progress_percent = "queued", 0
        locked.progress_message = "Waiting for a lip-sync worker"
        locked.error_message = ""
        locked.save()
        _enqueue_preprocess(locked)
    avatar_event_publish(locked)
    return locked


# --- Job state reported by the lipsync worker ------------------------------------------


def _current_job(avatar_id: int, task_id: str):
    """The avatar row locked, if this task is still the one it waits for."""
    avatar = Avatar.objects.select_for_update().filter(pk=avatar_id).first()
    if avatar is None or avatar.task_id != task_id or avatar.status != AvatarStatus.PROCESSING:
        return None
    return avatar


def avatar_job_is_current(avatar_id: int, task_id: str) -> bool:
    return Avatar.objects.filter(pk=avatar_id, task_id=task_id, status=AvatarStatus.PROCESSING).exists()


def avatar_progress_set(avatar_id: int, task_id: str, stage: str, percent: int, message: str = "") -> None:
    updated = Avatar.objects.filter(pk=avatar_id, task_id=task_id, status=AvatarStatus.PROCESSING).update(
        progress_stage=stage[:40], progress_percent=max(0, min(100, int(percent))), progress_message=message[:255]
    )
    if updated:
        avatar_event_publish(Avatar.objects.get(pk=avatar_id), "avatar.progress")


def avatar_preprocess_succeeded(
    avatar_id: int, task_id: str, *, assets_path: str, preview_image_path: str, frame_count: int, width: int,
    height: int, voice_reference_path: str = "",
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
    return True


class StaleJob(Exception):
    """The avatar this job worked for was deleted or reprocessed: drop the results."""
