"""Celery tasks of the `tts` queue (routed by the `tts_worker.` name prefix). Thin: they take
plain strings and call the services."""
from __future__ import annotations

import base64
import logging

from celery import shared_task
from celery.signals import worker_process_init
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


@worker_process_init.connect
def _warm_up(**_kwargs):
    # Loading piper's voice takes about a second: do it when the worker starts, not on the
    # first sentence a student waits for.
    names = getattr(settings, "TTS_PRELOAD_ENGINES", ["piper"])
    if names:
        try:
            services.tts_engines_warm_up(list(names))
        except Exception:  # noqa: BLE001 - a worker that cannot warm up still serves
            logger.exception("TTS warm-up failed")
