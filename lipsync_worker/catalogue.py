"""Publishes this worker's engines (usable or why not, device) for the web, which lists and
validates engines from what the workers report (`contracts.catalogue`): lip-sync engines
from every lipsync worker, and the ASR engines and responders from the worker hosting the
live sessions (the `live` queue), where conversations run."""

from __future__ import annotations

from celery.signals import worker_ready, worker_shutdown

from contracts.catalogue import CataloguePublisher
from contracts.tasks import LIPSYNC_QUEUE, LIVE_QUEUE, worker_consumes

_publishers: list[CataloguePublisher] = []


def _asr_rows() -> list[dict]:
    from .conversation.asr import asr_engine_list

    return asr_engine_list()


def _responder_rows() -> list[dict]:
    from .conversation.responders import responder_list

    return responder_list()


@worker_ready.connect
def _publish(sender=None, **_kwargs):
    from .engines import engine_list

    name = getattr(sender, "hostname", "") or "lipsync"
    live = worker_consumes(sender, LIVE_QUEUE)
    if worker_consumes(sender, LIPSYNC_QUEUE) or live:
        _publishers.append(CataloguePublisher("lipsync", name, engine_list).start())
    if live:
        _publishers.append(CataloguePublisher("asr", name, _asr_rows).start())
        _publishers.append(CataloguePublisher("llm", name, _responder_rows).start())


@worker_shutdown.connect
def _withdraw(**_kwargs):
    for publisher in _publishers:
        publisher.stop()
