"""Avatar state pushed to the avatar's channel-layer group (admin pages, API clients).

Events: `avatar.state` (on connect, and any change), `avatar.progress`, `avatar.ready`,
`avatar.error` (preprocessing), `avatar.starting`, `avatar.started`, `avatar.start_failed`
(live start: with the start `job`, whose `detail` is the reason of a failure, also kept in
`avatar.error_message`), `render.*` (talking clips)."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def avatar_group_name(avatar_id: int) -> str:
    return f"avatar-{avatar_id}"


def avatar_state(avatar, starting: bool | None = None) -> dict:
    """What clients see of an avatar on its events channel. `starting`: a start job is
    under way (it ends with the event `avatar.started` or `avatar.start_failed`, whose
    reason is then in `error_message`); pass it when it was read before the row (see
    avatars.live_services on the order of the two reads)."""
    if starting is None:
        from .live_services import avatar_start_pending

        starting = bool(avatar_start_pending(avatar.pk))
    return {
        "id": avatar.pk,
        "status": avatar.status,
        "starting": bool(starting) and avatar.status != "active",
        "progress": {
            "stage": avatar.progress_stage,
            "percent": avatar.progress_percent,
            "message": avatar.progress_message,
        },
        "error_message": avatar.error_message,
        "has_preview": bool(avatar.preview_image_path),
        "engine_url": avatar.engine_url,
    }


def avatar_event_publish(avatar, event: str = "avatar.state", job: dict | None = None) -> None:
    """The avatar's state to its viewers, with the job the event is about, if any (a start:
    {"kind": "start", "job_id", "status": starting|active|failed, "detail": reason})."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "avatar.event", "event": event, "avatar": avatar_state(avatar)}
    if job is not None:
        message["job"] = job
    try:
        async_to_sync(layer.group_send)(avatar_group_name(avatar.pk), message)
    except Exception:  # a lost push must never fail the job that made it
        logger.warning("Could not publish %s for avatar %s", event, avatar.pk, exc_info=True)


def avatar_job_event_publish(avatar_id: int, event: str, job: dict) -> None:
    """A job of the avatar finished (e.g. a voice preview): `{"event", "job"}` to its viewers."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "avatar.event", "event": event, "job": job}
    try:
        async_to_sync(layer.group_send)(avatar_group_name(avatar_id), message)
    except Exception:
        logger.warning("Could not publish %s for avatar %s", event, avatar_id, exc_info=True)
