"""Celery tasks of the `tts` queue (routed by the `tts_worker.` name prefix). Thin: they take
plain strings and call the services."""

from __future__ import annotations

import base64
import logging
import threading

from celery import shared_task
from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutdown
from django.conf import settings

from contracts import tasks as contract
from contracts.catalogue import CataloguePublisher
from contracts.errors import ServiceError, error_payload

from . import services
from .selectors import tts_model_list

logger = logging.getLogger(__name__)


@shared_task(name=contract.TTS_PREVIEW)
def tts_preview(
    text: str,
    tts_model: str,
    voice: str = "",
    reference_path: str = "",
    reference_text: str = "",
    avatar_id: int | None = None,
) -> dict:
    """WAV of the whole text, base64 (`contracts.tasks.TTSPreviewResult`); a failure the
    caller can act on comes back as data. An avatar's preview is announced on its events."""
    try:
        wav = services.tts_preview_wav(text, tts_model, voice, reference_path, reference_text)
        answer = {"wav_b64": base64.b64encode(wav).decode("ascii")}
    except ServiceError as exc:
        answer = {"error": error_payload(exc)}
    if avatar_id is not None:
        from avatars.events import avatar_job_event_publish

        job = {
            "kind": "tts_preview",
            "id": tts_preview.request.id,
            "ok": "error" not in answer,
            "detail": answer.get("error", {}).get("detail", ""),
        }
        avatar_job_event_publish(avatar_id, "tts.preview_done", job)
    return answer


# acks_late is off for streams: a stream redelivered minutes later is of no use to anyone.
@shared_task(name=contract.TTS_STREAM, acks_late=False)
def tts_stream(
    request_id: str, text: str, tts_model: str, voice: str = "", reference_path: str = "", reference_text: str = ""
) -> dict:
    return services.tts_stream_publish(request_id, text, tts_model, voice, reference_path, reference_text)


_serves_tts = False


@worker_init.connect
def _note_queues(sender=None, **_kwargs):
    # In the worker's main process, before any child exists: does it consume the tts queue?
    global _serves_tts
    _serves_tts = contract.worker_consumes(sender, contract.TTS_QUEUE)


def _warm_up() -> None:
    # Loading piper's voice takes about a second: do it when the worker starts, not on the
    # first sentence a student waits for.
    names = getattr(settings, "TTS_PRELOAD_ENGINES", ["piper"])
    if _serves_tts and names:
        try:
            services.tts_engines_warm_up(list(names))
        except Exception:  # a worker that cannot warm up still serves
            logger.exception("TTS warm-up failed")


@worker_process_init.connect
def _warm_up_child(**_kwargs):
    # Prefork children load their own models: onnxruntime's threads do not survive a fork.
    _warm_up()


_publisher: CataloguePublisher | None = None


@worker_ready.connect
def _warm_up_threads(sender=None, **_kwargs):
    # Thread pools have no children: load in the main process, without delaying readiness.
    # Then publish the engines for the web (after the warm-up, so piper reports as loaded).
    from celery.concurrency.prefork import TaskPool

    global _publisher
    if not _serves_tts:
        return
    _publisher = CataloguePublisher("tts", getattr(sender, "hostname", "") or "tts", tts_model_list)
    in_main = not isinstance(getattr(sender, "pool", None), TaskPool)

    def warm_up_and_publish():
        _publisher.start()  # at once: the web can list and check engines
        if in_main:
            _warm_up()
            _publisher.publish_now()  # again, now that the models are loaded

    threading.Thread(target=warm_up_and_publish, name="tts-warm-up", daemon=True).start()


@worker_shutdown.connect
def _withdraw(**_kwargs):
    if _publisher is not None:
        _publisher.stop()
