"""The render job: speech (TTS or upload) + the warmed avatar -> MP4 in storage."""

from __future__ import annotations

import logging
import os
import shutil
import time

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from avatars import render_services
from avatars.models import AvatarRender
from avatars.storage import storage_delete, storage_local_path, storage_save
from contracts.errors import ServiceError

from .job_failures import unexpected_failure_reason
from .render_encoder import render_clip
from .speech import segment_from_file, segment_from_tts_chunk, segment_join
from .warm_avatars import warm_avatar_get
from .workdirs import job_workdir

logger = logging.getLogger(__name__)
OUTPUT_NAME = "clip.mp4"


def _speech(render: AvatarRender, report):
    if render.audio_source_path:
        with storage_local_path(render.audio_source_path) as path:
            return segment_from_file(path)
    from avatars.selectors import avatar_voice_reference
    from contracts.tts_stream import TTSStream

    reference_path, reference_text = avatar_voice_reference(render.avatar)
    stream = TTSStream().start(
        render.text, render.tts_model, render.voice, reference_path=reference_path, reference_text=reference_text
    )
    segments = []
    for chunk in stream.chunks(timeout=settings.TTS_PREVIEW_TIMEOUT):
        segments.append(segment_from_tts_chunk(chunk))
        report(5 + min(25, 2 * len(segments)), f"Synthesising speech: {len(segments)} part(s) done")
    return segment_join(segments)


def render_avatar_clip(render_id: int, task_id: str) -> str:
    """Idempotent: a job that is no longer current does nothing; a rerun starts clean."""
    render = AvatarRender.objects.select_related("avatar").filter(pk=render_id).first()
    if render is None or not render_services.render_job_is_current(render_id, task_id):
        return "skipped"
    output_name = f"{render.storage_prefix}/{OUTPUT_NAME}"
    storage_delete(output_name)
    last = [0.0]

    def report(percent: int, message: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.4:
            last[0] = now
            render_services.render_progress_set(render_id, task_id, percent, message)

    workdir = job_workdir(f"render-{render_id}-{task_id}-")
    try:
        report(1, "Loading the avatar")
        warm = warm_avatar_get(render.avatar)
        audio = _speech(render, report)
        if audio.duration > settings.RENDER_MAX_SECONDS:
            raise ServiceError(
                f"The speech lasts {audio.duration:.0f} s; the limit is {settings.RENDER_MAX_SECONDS:g} s."
            )
        if audio.duration < 0.04:
            raise ServiceError("The speech is empty.")
        out = os.path.join(workdir, OUTPUT_NAME)
        result = render_clip(
            warm.engine,
            warm.handle,
            warm.assets.size,
            audio,
            out,
            progress=lambda done, total: report(30 + int(68 * done / total), f"Rendering frame {done} of {total}"),
        )
        storage_save(output_name, out)
        if not render_services.render_succeeded(
            render_id, task_id, video_path=output_name, frame_count=result.frame_count, duration=result.duration
        ):
            storage_delete(output_name)
            return "stale"
        return "done"
    except ServiceError as exc:
        storage_delete(output_name)
        render_services.render_failed(render_id, task_id, exc.detail)
        return "error"
    except SoftTimeLimitExceeded:
        storage_delete(output_name)
        render_services.render_failed(render_id, task_id, "Rendering took too long and was stopped.")
        return "error"
    except Exception as exc:  # noqa: BLE001 - logged and recorded by unexpected_failure_reason
        storage_delete(output_name)
        reason = unexpected_failure_reason(
            exc, f"Render {render_id}", "Rendering failed unexpectedly (the error is in the worker's log)."
        )
        render_services.render_failed(render_id, task_id, reason)
        return "error"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
