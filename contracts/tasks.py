"""The tasks the web asks workers to run: their names, queues and payloads.

The web enqueues by name (`task_send`) and never imports a worker package; each worker
declares its tasks with these names (`@shared_task(name=...)`). Arguments are ids and
plain strings; results are plain dicts whose shapes are written down here.
"""

from __future__ import annotations

from typing import Literal, TypedDict

LIPSYNC_QUEUE = "lipsync"  # preprocessing and renders (prefork children, time and memory limits)
LIVE_QUEUE = "live"  # starts, served by the worker process that hosts the live sessions
TTS_QUEUE = "tts"

# lipsync queue. Routing is by the name's prefix (settings.CELERY_TASK_ROUTES).
PREPROCESS_AVATAR = "lipsync_worker.preprocess_avatar"  # (avatar_id, task_id) -> status string
RENDER_AVATAR = "lipsync_worker.render_avatar"  # (render_id, task_id) -> status string
LIVE_START = "lipsync_worker.live_start"  # live queue: (avatar_id, ref_file, engine_url) -> LiveStartResult
# tts queue
TTS_PREVIEW = (
    "tts_worker.tasks.tts_preview"  # (text, tts_model, voice, reference_path, reference_text) -> TTSPreviewResult
)
TTS_STREAM = "tts_worker.tasks.tts_stream"  # (request_id, text, tts_model, voice, reference_path, reference_text)


class LiveStartResult(TypedDict, total=False):
    status: Literal["active", "gone", "not_ready", "error"]
    detail: str  # why, when not active
    serving_worker: str  # the name of the worker serving it, when active
    serving_channel: str


class TTSPreviewResult(TypedDict, total=False):
    wav_b64: str  # the WAV, base64, when it worked
    error: dict  # `contracts.errors.error_payload` of the failure otherwise


def task_send(name: str, *args, task_id: str | None = None, **options):
    """Enqueue task `name` with `args`; returns Celery's AsyncResult."""
    from tutor_site.celery import app

    if app.conf.task_always_eager:
        # Tests only: run in this process (send_task itself ignores the eager setting).
        app.loader.import_default_modules()
        return app.tasks[name].apply(args=list(args), task_id=task_id)
    return app.send_task(name, args=list(args), task_id=task_id, **options)


def worker_consumes(worker, queue: str) -> bool:
    """Does this Celery worker (a `worker_init` / `worker_ready` sender) consume `queue`?
    A worker started without -Q consumes every queue."""
    amqp = getattr(getattr(worker, "app", None), "amqp", None)
    queues = set(amqp.queues.consume_from or {}) if amqp else set()
    return not queues or queue in queues
