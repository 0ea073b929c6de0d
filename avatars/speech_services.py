"""Voice previews, web side: check the request, queue it for a tts worker, hand back the WAV.

`speech_preview_request` returns at once with a job; the result is fetched with
`speech_preview_result` (and, for an avatar's preview, announced on the avatar's events
WebSocket by the worker). Jobs belong to the user who asked: anyone else gets a 404.
"""

from __future__ import annotations

import base64
import logging
import uuid
from dataclasses import dataclass

from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult
from django.conf import settings
from kombu.exceptions import OperationalError

from contracts import tasks
from contracts.engines import tts_engine
from contracts.errors import EngineUnavailable, ObjectNotFound, error_from_payload
from contracts.store import client, redis_key
from contracts.tasks import task_send

from .engine_selectors import tts_request_check
from .quotas import avatar_owner_id, tts_chars_charge
from .selectors import avatar_get, avatar_voice_reference

logger = logging.getLogger(__name__)

# How long a finished preview can be fetched.
PREVIEW_RESULT_SECONDS = 600


@dataclass(frozen=True)
class PreviewJob:
    job_id: str
    avatar_id: int | None


def _owner_key(job_id: str) -> str:
    return redis_key("tts-preview", job_id)


def speech_preview_request(
    user, *, text, tts_model: str = "", voice: str = "", avatar_id: int | None = None
) -> PreviewJob:
    """Check the request against what the tts workers reported and the admin's
    TTS_MAX_CHARS_PER_MINUTE, and queue it."""
    reference_path = reference_text = ""
    quota_owner = user.pk  # TTS_MAX_CHARS_PER_MINUTE: the caller's, or the avatar's admin's
    if avatar_id is not None:
        avatar = avatar_get(user, avatar_id, "use")
        quota_owner = avatar_owner_id(avatar)
        tts_model = tts_model or avatar.tts_model
        voice = voice or (avatar.timbre if tts_model == avatar.tts_model else "")
        reference_path, reference_text = avatar_voice_reference(avatar)
    tts_model, voice, text = tts_request_check(text, tts_model, voice, max_chars=settings.TTS_PREVIEW_MAX_CHARS)
    if not tts_engine(tts_model).supports_clone:
        reference_path = reference_text = ""
    tts_chars_charge(quota_owner, text)
    job_id = str(uuid.uuid4())
    try:
        client().set(_owner_key(job_id), str(user.pk), ex=PREVIEW_RESULT_SECONDS)
        task_send(
            tasks.TTS_PREVIEW,
            text,
            tts_model,
            voice,
            reference_path,
            reference_text,
            avatar_id,
            task_id=job_id,
            expires=PREVIEW_RESULT_SECONDS,
        )
    except OperationalError as exc:
        logger.warning("Could not queue a voice preview: %s", exc)
        raise EngineUnavailable("The task queue cannot be reached right now; try again shortly.") from None
    return PreviewJob(job_id, avatar_id)


def _result(job_id: str, user) -> AsyncResult:
    owner = client().get(_owner_key(str(job_id)))
    if owner is None or owner.decode() != str(user.pk):
        raise ObjectNotFound(f"Preview {job_id} not found.")
    return AsyncResult(str(job_id))


def _wav(answer: dict) -> bytes:
    if "error" in answer:
        raise error_from_payload(answer["error"])
    return base64.b64decode(answer["wav_b64"])


def speech_preview_result(user, job_id: str) -> bytes | None:
    """The WAV when the job is done, None while it runs; its failure as the same error."""
    result = _result(job_id, user)
    if not result.ready():
        return None
    if result.failed():
        raise EngineUnavailable(f"The preview failed on the tts worker: {result.result}")
    return _wav(result.result)


def speech_preview_wait(user, job_id: str, timeout: float | None = None) -> bytes:
    """For clients that wait (`?wait=1`): the WAV within TTS_PREVIEW_TIMEOUT, or a 503."""
    timeout = settings.TTS_PREVIEW_TIMEOUT if timeout is None else timeout
    try:
        answer = _result(job_id, user).get(timeout=timeout)
    except CeleryTimeoutError:
        raise EngineUnavailable(
            f"No TTS worker answered within {timeout:g} s: is a worker serving the 'tts' queue running?"
        ) from None
    return _wav(answer)
