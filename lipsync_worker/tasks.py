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
