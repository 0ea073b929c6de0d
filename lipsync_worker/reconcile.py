"""Every live worker checks, once a heartbeat, for active avatars whose serving worker
died without a word (SIGKILL, lost machine) and sets them back to inactive with the reason,
so that viewers get a clear error and Start works again; and, every JOB_PASS_SECONDS, for
preprocessing jobs and renders whose queue message was lost with Redis
(`avatars.job_reconcile`), which fail with the reason so that they can be started again.
Both idempotent across workers."""

from __future__ import annotations

import logging
import threading
import time

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings

from contracts.tasks import LIVE_QUEUE, worker_consumes

logger = logging.getLogger(__name__)
_stop = threading.Event()

# Lost jobs are looked for this often, by one worker at a time (a lock in Redis): the
# check asks every worker what it holds.
JOB_PASS_SECONDS = 60


def live_pass() -> list[int]:
    from avatars.live_services import avatar_live_reconcile

    reset = avatar_live_reconcile()
    if reset:
        logger.info("Avatars %s lost their worker; set inactive", reset)
    return reset


def job_pass() -> dict[str, list[int]]:
    """Fail the jobs whose queue message was lost, unless another worker just looked."""
    from avatars.job_reconcile import jobs_lost_fail
    from contracts.store import client, redis_key

    if not client().set(redis_key("jobs", "lost-pass"), "1", nx=True, ex=max(1, JOB_PASS_SECONDS - 5)):
        return {"renders": [], "avatars": []}
    failed = jobs_lost_fail()
    if failed["renders"] or failed["avatars"]:
        logger.warning("Jobs lost with the queue, failed with the reason: %s", failed)
    return failed


def _run() -> None:
    from django.db import close_old_connections

    next_job_pass = time.monotonic() + JOB_PASS_SECONDS
    while not _stop.wait(settings.LIVE_HEARTBEAT_SECONDS):
        passes = [("live avatars", live_pass)]
        if time.monotonic() >= next_job_pass:
            next_job_pass = time.monotonic() + JOB_PASS_SECONDS
            passes.append(("lost jobs", job_pass))
        for name, run in passes:
            try:
                # This thread's database connection outlives a database restart: drop it when
                # it is broken (CONN_HEALTH_CHECKS), or every pass after one would fail.
                close_old_connections()
                run()
            except Exception:
                logger.warning("Could not reconcile %s", name, exc_info=True)


@worker_ready.connect
def _start(sender=None, **_kwargs):
    if worker_consumes(sender, LIVE_QUEUE):
        threading.Thread(target=_run, name="live-reconcile", daemon=True).start()


@worker_shutdown.connect
def _end(**_kwargs):
    _stop.set()
