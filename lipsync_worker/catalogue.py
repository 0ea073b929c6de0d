"""Publishes this lipsync worker's engines (usable or why not, device) for the web, which
lists and validates lip-sync engines from what the workers report (`contracts.catalogue`)."""

from __future__ import annotations

from celery.signals import worker_ready, worker_shutdown

from contracts.catalogue import CataloguePublisher
from contracts.tasks import LIPSYNC_QUEUE, LIVE_QUEUE, worker_consumes

from .engines import engine_list

_publisher: CataloguePublisher | None = None


@worker_ready.connect
def _publish(sender=None, **_kwargs):
    global _publisher
    if worker_consumes(sender, LIPSYNC_QUEUE) or worker_consumes(sender, LIVE_QUEUE):
        _publisher = CataloguePublisher("lipsync", getattr(sender, "hostname", "") or "lipsync", engine_list).start()


@worker_shutdown.connect
def _withdraw(**_kwargs):
    if _publisher is not None:
        _publisher.stop()
