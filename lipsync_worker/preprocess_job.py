"""The preprocess job: storage in, assets out, job state reported through avatar services."""

from __future__ import annotations

import logging
import shutil
import time

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from analytics.services import usage_preprocess_done
from avatars import services as avatar_services
from avatars.models import Avatar
from avatars.storage import storage_delete_prefix, storage_local_path, storage_save
from contracts.errors import InvalidMedia

from .asset_pipeline import PREVIEW_FILE, PreprocessError, preprocess_video
from .job_failures import unexpected_failure_reason
from .workdirs import job_workdir

logger = logging.getLogger(__name__)


class _ProgressReporter:
    """Writes progress at most a few times a second, so the database is not flooded."""

    def __init__(self, avatar_id: int, task_id: str, min_interval: float = 0.4):
        self.avatar_id, self.task_id, self.min_interval = avatar_id, task_id, min_interval
        self._last = 0.0

    def __call__(self, stage: str, percent: int, message: str) -> None:
        now = time.monotonic()
        if now - self._last < self.min_interval and percent < 100:
            return
        self._last = now
        if not avatar_services.avatar_progress_set(self.avatar_id, self.task_id, stage, percent, message):
            # Replaced (a reprocess, a new avatar_blur) or deleted: stop instead of finishing for nothing.
            raise avatar_services.StaleJob()


VOICE_REFERENCE_FILE = "voice_reference.wav"


def _voice_reference(src: str, workdir: str) -> str:
    """Mono, resampled, trimmed, loudness-normalised cloning reference."""
    from tts_worker.audio import voice_reference_prepare

    out = f"{workdir}/{VOICE_REFERENCE_FILE}"
    try:
        voice_reference_prepare(src, out)
    except InvalidMedia as exc:
        raise PreprocessError(f"The reference voice cannot be used: {exc.detail}") from None
    return out


def _blur_note(avatar_id: int, blur: dict | None) -> None:
    """Frames where segmentation found no person keep their background sharp: not an
    error (face tracking decides whether the video is usable), but worth a line in the log."""
    if not blur or not blur["frames_without_person"]:
        return
    if not blur["blurred"]:
        logger.warning(
            "Avatar %s: background blur is on, but no person was found in any of its %d frames; "
            "the frames are left unblurred.",
            avatar_id,
            blur["frames"],
        )
    else:
        logger.info(
            "Avatar %s: no person found in %d of %d frames; those frames are left unblurred.",
            avatar_id,
            blur["frames_without_person"],
            blur["frames"],
        )


def preprocess_avatar(avatar_id: int, task_id: str) -> str:
    """Run (or re-run) preprocessing for one avatar. Idempotent: a job that is no longer
    the avatar's current one does nothing; a redelivered one starts again cleanly."""
    avatar = Avatar.objects.filter(pk=avatar_id).first()
    if avatar is None or not avatar_services.avatar_job_is_current(avatar_id, task_id):
        return "skipped"
    assets_prefix = f"{avatar.storage_prefix}/assets/{task_id}"
    # A killed earlier attempt of this same job may have left files: start clean.
    storage_delete_prefix(assets_prefix)
    report = _ProgressReporter(avatar_id, task_id)
    started = time.monotonic()
    workdir = job_workdir(f"avatar-{avatar_id}-{task_id}-")
    try:
        report("decoding", 0, "Starting")
        with storage_local_path(avatar.video_path) as video:
            result = preprocess_video(
                video,
                workdir,
                expected_seconds=avatar.duration_seconds or 1.0,
                min_face_ratio=settings.FACE_MIN_FRAME_RATIO,
                background_blur=avatar.avatar_blur,
                progress=report,
            )
        _blur_note(avatar_id, result.blur)
        files = dict(result.files)
        if avatar.audio_path:
            report("voice", 97, "Preparing the reference voice")
            with storage_local_path(avatar.audio_path) as voice:
                files[VOICE_REFERENCE_FILE] = _voice_reference(voice, workdir)
        report("saving", 98, "Saving the avatar's assets")
        for name, path in files.items():
            storage_save(f"{assets_prefix}/{name}", path)
        old = avatar_services.avatar_preprocess_succeeded(
            avatar_id,
            task_id,
            assets_path=assets_prefix,
            preview_image_path=f"{assets_prefix}/{PREVIEW_FILE}",
            voice_reference_path=f"{assets_prefix}/{VOICE_REFERENCE_FILE}" if avatar.audio_path else "",
            frame_count=result.frame_count,
            width=result.width,
            height=result.height,
        )
        if old:
            storage_delete_prefix(old)
        usage_preprocess_done(avatar_id, seconds=time.monotonic() - started)
        return "ready"
    except avatar_services.StaleJob:
        storage_delete_prefix(assets_prefix)
        return "stale"
    except (PreprocessError, InvalidMedia, SoftTimeLimitExceeded) as exc:
        storage_delete_prefix(assets_prefix)
        if isinstance(exc, SoftTimeLimitExceeded):
            reason = "Processing took too long and was stopped; upload a shorter video."
        else:
            reason = exc.detail if isinstance(exc, InvalidMedia) else str(exc)
        avatar_services.avatar_preprocess_failed(avatar_id, task_id, reason)
        return "error"
    except Exception as exc:  # noqa: BLE001 - logged and recorded by unexpected_failure_reason
        storage_delete_prefix(assets_prefix)
        reason = unexpected_failure_reason(
            exc,
            f"Preprocessing avatar {avatar_id}",
            "Processing failed unexpectedly (the error is in the worker's log). Try reprocessing.",
        )
        avatar_services.avatar_preprocess_failed(avatar_id, task_id, reason)
        return "error"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
