"""Celery tasks of the `tts` queue (routed by the `tts_worker.` name prefix). Thin: they take
plain strings and call the services."""
from __future__ import annotations

import base64
import logging
import threading

from celery import shared_task
from celery.signals import worker_init, worker_process_init, worker_ready
from django.conf import settings

from tutor_site.exceptions import ServiceError

from . import services

logger = logging.getLogger(__name__)


@shared_task(name="tts_worker.tasks.tts_preview")
def tts_preview(text: str, tts_model: str, voice: str = "", reference_path: str = "", reference_text: str = "") -> dict:
    """WAV of the whole text, base64; a failure the caller can act on comes back as data."""
    try:
        wav = services.tts_preview_wav(text, tts_model, voice, reference_path, reference_text)
    except ServiceError as exc:
        return {"error": {"status": exc.status_code, "type": type(exc).__name__, **exc.as_dict()}}
    return {"wav_b64": base64.b64encode(wav).decode("ascii")}


# acks_late is off for streams: a stream redelivered minutes later is of no use to anyone.
@shared_task(name="tts_worker.tasks.tts_stream", acks_late=False)
def tts_stream(
    request_id: str, text: str, tts_model: str, voice: str = "", reference_path: str = "", reference_text: str = ""
) -> dict:
    return services.tts_stream_publish(request_id, text, tts_model, voice, reference_path, reference_text)


_serves_tts = False


@worker_init.connect
def _note_queues(sender=None, **_kwargs):
    # In the worker's main process, before any child exists: does it consume the tts queue?
    global _serves_tts
    consume_from = getattr(getattr(sender, "app", None), "amqp", None)
    queues = set(consume_from.queues.consume_from or {}) if consume_from else set()
    _serves_tts = not queues or "tts" in queues


def _warm_up() -> None:
    # Loading piper's voice takes about a second: do it when the worker starts, not on the
    # first sentence a student waits for.
    names = getattr(settings, "TTS_PRELOAD_ENGINES", ["piper"])
    if _serves_tts and names:
        try:
            services.tts_engines_warm_up(list(names))
        except Exception:  # noqa: BLE001 - a worker that cannot warm up still serves
            logger.exception("TTS warm-up failed")


@worker_process_init.connect
def _warm_up_child(**_kwargs):
    # Prefork children load their own models: onnxruntime's threads do not survive a fork.
    _warm_up()


@worker_ready.connect
def _warm_up_threads(sender=None, **_kwargs):
    # Thread pools have no children: load in the main process, without delaying readiness.
    from celery.concurrency.prefork import TaskPool

    if not isinstance(getattr(sender, "pool", None), TaskPool):
        threading.Thread(target=_warm_up, name="tts-warm-up", daemon=True).start()
