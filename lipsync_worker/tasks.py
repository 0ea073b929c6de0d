"""Celery tasks of the `lipsync` queue (preprocessing, renders: prefork children with time
and memory limits) and the `live` queue (starts: the process that hosts live sessions).
Thin: they take ids and call the services."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from contracts import tasks as contract

# Connected to the worker signals: the live runtime starts with the worker, and the
# worker publishes its engines and resets avatars whose worker died.
from . import catalogue as _catalogue  # noqa: F401
from . import job_limits as _job_limits  # noqa: F401
from . import reconcile as _reconcile  # noqa: F401
from .job_limits import running_job
from .live import signals as _live_signals  # noqa: F401

# The database unreachable (restarting): the job runs again a little later rather than being
# lost (the jobs record nothing then, and a rerun starts clean).
DATABASE_RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 30,
}


@shared_task(name=contract.PREPROCESS_AVATAR, acks_late=True, reject_on_worker_lost=True, **DATABASE_RETRY)
def preprocess_avatar_task(avatar_id: int, task_id: str) -> str:
    from avatars import services
    from avatars.storage import storage_delete_prefix

    from .preprocess_job import preprocess_avatar

    def fail(reason: str) -> None:
        storage_delete_prefix(f"avatars/{avatar_id}/assets/{task_id}")
        services.avatar_preprocess_failed(avatar_id, task_id, reason)

    with running_job(f"Preprocessing of avatar {avatar_id}", fail):
        return preprocess_avatar(avatar_id, task_id)


@shared_task(name=contract.RENDER_AVATAR, acks_late=True, reject_on_worker_lost=True, **DATABASE_RETRY)
def render_avatar_task(render_id: int, task_id: str) -> str:
    from avatars import render_services

    from .render_job import render_avatar_clip

    def fail(reason: str) -> None:
        render_services.render_failed(render_id, task_id, reason)

    with running_job(f"Render {render_id}", fail):
        return render_avatar_clip(render_id, task_id)


# No late ack: a start redelivered minutes after its worker died helps nobody; the web
# side reports the 202 job as not done and start can be asked again (it is idempotent).
@shared_task(name=contract.LIVE_START, bind=True, acks_late=False)
def live_start_task(self, avatar_id: int, ref_file: str = "", engine_url: str = "", placement_reason: str = "") -> dict:
    from .live.start import live_avatar_warm_up

    return live_avatar_warm_up(
        avatar_id, ref_file, engine_url, worker_name=self.request.hostname or "", placement_reason=placement_reason
    )
