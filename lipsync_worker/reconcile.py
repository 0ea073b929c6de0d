"""Every lipsync worker checks, once a heartbeat, for active avatars whose serving worker
died without a word (SIGKILL, lost machine) and sets them back to inactive with the reason,
so that viewers get a clear error and Start works again. Idempotent across workers."""

from __future__ import annotations

import logging
import threading

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings

from contracts.tasks import LIVE_QUEUE, worker_consumes

logger = logging.getLogger(__name__)
_stop = threading.Event()


def _run() -> None:
    from django.db import close_old_connections

    from avatars.live_services import avatar_live_reconcile

    while not _stop.wait(settings.LIVE_HEARTBEAT_SECONDS):
        try:
            # This thread's database connection outlives a database restart: drop it when
            # it is broken (CONN_HEALTH_CHECKS), or every pass after one would fail.
            close_old_connections()
            reset = avatar_live_reconcile()
            if reset:
                logger.info("Avatars %s lost their worker; set inactive", reset)
        except Exception:
            logger.warning("Could not reconcile live avatars", exc_info=True)


@worker_ready.connect
def _start(sender=None, **_kwargs):
    if worker_consumes(sender, LIVE_QUEUE):
        threading.Thread(target=_run, name="live-reconcile", daemon=True).start()


@worker_shutdown.connect
def _end(**_kwargs):
    _stop.set()
