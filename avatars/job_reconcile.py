"""Jobs whose queue message was lost: when Redis (the Celery broker) stops without having
saved, the messages of queued and running preprocessing jobs and renders go with it, and
their rows would stay `processing` / `queued` for ever. A job counts as lost when it is
older than JOB_LOST_AFTER_SECONDS and its task is nowhere: not in the broker's queue, not
delivered to a worker (the broker's unacknowledged messages), and no worker reports it
(reserved, active or scheduled). It is then failed through the same services a failing job
uses, so the user sees why and can start it again. Run by the lipsync workers'
reconciler (`lipsync_worker/reconcile.py`); idempotent across workers (the services
change a job only while it is still the current one).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import Avatar, AvatarRender, AvatarStatus, RenderStatus

logger = logging.getLogger(__name__)

JOB_LOST_REASON = "The job was lost (the queue restarted); start it again."
# A job past Celery's hard time limit cannot still be running legitimately; the margin
# covers the moments between a row's commit and its message (on_commit) and between a
# worker taking a message and recording it as unacknowledged.
JOB_LOST_AFTER_SECONDS = settings.CELERY_TASK_TIME_LIMIT + 120
INSPECT_TIMEOUT = 2.0

_JOB_QUEUE = "lipsync"  # CELERY_TASK_ROUTES: preprocessing and renders


def _stale_jobs(now=None) -> tuple[list[AvatarRender], list[Avatar]]:
    # updated_at: creation or (avatars) the last reprocess; progress updates do not touch it.
    before = (now or timezone.now()) - timedelta(seconds=JOB_LOST_AFTER_SECONDS)
    renders = AvatarRender.objects.filter(
        status__in=[RenderStatus.QUEUED, RenderStatus.PROCESSING], updated_at__lt=before
    ).exclude(task_id="")
    avatars = Avatar.objects.filter(status=AvatarStatus.PROCESSING, updated_at__lt=before).exclude(task_id="")
    return list(renders), list(avatars)


def _broker_messages(app) -> bytes:
    """Every message of the job queue and every delivered, unacknowledged one, raw (kombu's
    Redis layout: a list per queue and priority, a hash of unacknowledged messages)."""
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    options = app.conf.broker_transport_options or {}
    prefix = options.get("global_keyprefix", "")
    steps = options.get("priority_steps", PRIORITY_STEPS)
    queues = [_JOB_QUEUE] + [f"{_JOB_QUEUE}{Channel.sep}{step}" for step in steps if step]
    with app.connection_for_read() as connection:
        client = connection.default_channel.client
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.lrange(prefix + queue, 0, -1)
            pipe.hvals(prefix + Channel.unacked_key)
            found = pipe.execute()
    return b"\n".join(raw for batch in found for raw in batch)


def _known_to_workers(app, task_ids: list[str]) -> set[str] | None:
    """The ids some worker holds (reserved, active, scheduled); None when no worker answered
    (then nothing can be told apart, and nothing is failed)."""
    replies = app.control.inspect(timeout=INSPECT_TIMEOUT).query_task(*task_ids)
    if not replies:
        return None
    return {task_id for reply in replies.values() for task_id in (reply or {})}


def jobs_lost_fail(app=None) -> dict[str, list[int]]:
    """Fail the lost jobs with JOB_LOST_REASON; returns {"renders": ids, "avatars": ids}."""
    from avatars.render_services import render_failed
    from avatars.services import avatar_preprocess_failed
    from avatars.storage import storage_delete_prefix

    failed: dict[str, list[int]] = {"renders": [], "avatars": []}
    renders, avatars = _stale_jobs()
    if not renders and not avatars:
        return failed
    if app is None:
        from tutor_site.celery import app
    queued = _broker_messages(app)
    candidates = [job for job in (*renders, *avatars) if job.task_id.encode() not in queued]
    if not candidates:
        return failed
    known = _known_to_workers(app, [job.task_id for job in candidates])
    if known is None:
        logger.info("No worker answered; jobs %s not checked", [job.task_id for job in candidates])
        return failed
    for job in candidates:
        if job.task_id in known:
            continue
        if isinstance(job, AvatarRender):
            if render_failed(job.pk, job.task_id, JOB_LOST_REASON):
                failed["renders"].append(job.pk)
        elif avatar_preprocess_failed(job.pk, job.task_id, JOB_LOST_REASON):
            # As a failing preprocessing job does: nothing half-made is kept.
            storage_delete_prefix(f"avatars/{job.pk}/assets/{job.task_id}")
            failed["avatars"].append(job.pk)
    return failed
