"""Start the live runtime with a lip-sync worker and stop it cleanly with it.

Prefork children each get their own runtime (a warm-up task then runs in, and is
recorded for, one child); thread and solo pools run everything in the main process.
"""

from __future__ import annotations

import logging
import threading

from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

logger = logging.getLogger(__name__)
_serves_live = False
_worker_name = ""


@worker_init.connect
def _note_queues(sender=None, **_kwargs):
    global _serves_live, _worker_name
    amqp = getattr(getattr(sender, "app", None), "amqp", None)
    queues = set(amqp.queues.consume_from or {}) if amqp else set()
    _serves_live = not queues or "live" in queues
    _worker_name = getattr(sender, "hostname", "") or ""


def serves_live_queue() -> bool:
    """Does this worker take starts from the `live` queue? Only then does placement send it
    avatars (a runtime also starts in a worker handed a start on a queue of its own)."""
    return _serves_live


def _start() -> None:
    if not _serves_live:
        return
    from .runtime import runtime_get

    try:
        runtime_get(_worker_name)
    except Exception:  # the first warm-up tries again
        logger.exception("The live runtime could not start")


@worker_process_init.connect
def _start_in_child(**_kwargs):
    threading.Thread(target=_start, name="live-start", daemon=True).start()


@worker_ready.connect
def _start_in_main(sender=None, **_kwargs):
    from celery.concurrency.prefork import TaskPool

    if not isinstance(getattr(sender, "pool", None), TaskPool):
        threading.Thread(target=_start, name="live-start", daemon=True).start()


@worker_shutting_down.connect
def _drain(how="", **_kwargs):
    """SIGTERM (Celery's warm shutdown): stop taking avatars and sessions at once; the
    sessions end when they leave or at the end of LIVE_DRAIN_GRACE_SECONDS (`_stop`). A cold
    shutdown (a second signal, SIGQUIT) ends them at once."""
    from .runtime import runtime_current

    runtime = runtime_current()
    if runtime is not None and runtime.channel:
        runtime.drain_begin(0.0 if str(how).lower() == "cold" else None)  # a second signal: at once


def _stop() -> None:
    from avatars import live_services

    from .runtime import runtime_current

    runtime = runtime_current()
    if runtime is None or not runtime.channel:
        return
    if runtime.draining and not runtime.drain_wait():
        logger.info("Drain of %s: grace period over, ending the sessions left", runtime.name)
    runtime.shutdown("The lip-sync server shut down; start the avatar again.")
    try:
        live_services.avatar_live_worker_gone(runtime.channel, f"The lip-sync worker '{runtime.name}' stopped.")
    except Exception:
        logger.exception("Could not mark the avatars of %s as stopped", runtime.name)


@worker_shutdown.connect
def _stop_main(**_kwargs):
    _stop()


@worker_process_shutdown.connect
def _stop_child(**_kwargs):
    _stop()
