"""Memory limit of the job processes: preprocessing and renders run in prefork children
(the `lipsync` queue; Celery enforces CELERY_TASK_TIME_LIMIT there, which the threads pool
of the live worker cannot). A child whose resident memory passes LIPSYNC_JOB_MEMORY_MB
marks its job failed with the reason and exits; Celery replaces the child, and the job's
redelivered message finds the job no longer current and does nothing, so a hostile file
cannot take down worker after worker.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from celery.signals import worker_process_init
from django.conf import settings

logger = logging.getLogger(__name__)

CHECK_SECONDS = 0.25
_current: tuple[str, Callable[[str], object]] | None = None
_lock = threading.Lock()


class running_job:
    """`with running_job("preprocess avatar 7", on_memory_limit):` around a job's work."""

    def __init__(self, label: str, fail: Callable[[str], object]):
        self.entry = (label, fail)

    def __enter__(self):
        global _current
        with _lock:
            _current = self.entry

    def __exit__(self, *exc):
        global _current
        with _lock:
            _current = None


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1048576


def _watch(limit_mb: float) -> None:
    stop = threading.Event()
    while not stop.wait(CHECK_SECONDS):
        used = resident_mb()
        if used <= limit_mb:
            continue
        with _lock:
            job = _current
        if job is None:
            continue  # between jobs: the next one starts in a fresh child if this one is replaced
        label, fail = job
        reason = (
            f"The job needed more than {limit_mb:g} MB of memory (LIPSYNC_JOB_MEMORY_MB) and was stopped; "
            "upload a shorter or smaller video."
        )
        logger.error("%s used %.0f MB (limit %g MB): failing it and replacing this process", label, used, limit_mb)
        try:
            fail(reason)
        finally:
            os._exit(70)  # no cleanup in a process that is out of memory; Celery starts a new child


@worker_process_init.connect
def _start_watch(**_kwargs):
    limit = settings.LIPSYNC_JOB_MEMORY_MB
    if limit:
        threading.Thread(target=_watch, args=(float(limit),), name="job-memory-limit", daemon=True).start()
