"""Celery tasks of the `lipsync` queue. Thin: they take ids and call the services."""
from celery import shared_task


@shared_task(name="lipsync_worker.preprocess_avatar", acks_late=True, reject_on_worker_lost=True)
def preprocess_avatar_task(avatar_id: int, task_id: str) -> str:
    from .preprocessing import preprocess_avatar

    return preprocess_avatar(avatar_id, task_id)


@shared_task(name="lipsync_worker.render_avatar", acks_late=True, reject_on_worker_lost=True)
def render_avatar_task(render_id: int, task_id: str) -> str:
    from .render_job import render_avatar_clip

    return render_avatar_clip(render_id, task_id)


# Start the live runtime with the worker (see live/signals.py).
from .live import signals as _live_signals  # noqa: E402,F401


# No late ack: a start redelivered minutes after its worker died helps nobody; the web
# side reports the 202 job as not done and start can be asked again (it is idempotent).
@shared_task(name="lipsync_worker.live_start", bind=True, acks_late=False)
def live_start_task(self, avatar_id: int, ref_file: str = "", engine_url: str = "") -> dict:
    from .live.warmup import live_avatar_warm_up

    return live_avatar_warm_up(avatar_id, ref_file, engine_url, worker_name=self.request.hostname or "")
