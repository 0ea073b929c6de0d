"""Avatar state pushed to the avatar's channel-layer group (admin pages, API clients)."""
from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def avatar_group_name(avatar_id: int) -> str:
    return f"avatar-{avatar_id}"


def avatar_state(avatar) -> dict:
    return {
        "id": avatar.pk,
        "status": avatar.status,
        "progress": {
            "stage": avatar.progress_stage,
            "percent": avatar.progress_percent,
            "message": avatar.progress_message,
        },
        "error_message": avatar.error_message,
        "has_preview": bool(avatar.preview_image_path),
        "engine_url": avatar.engine_url,
    }


def avatar_event_publish(avatar, event: str = "avatar.state") -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "avatar.event", "event": event, "avatar": avatar_state(avatar)}
    try:
        async_to_sync(layer.group_send)(avatar_group_name(avatar.pk), message)
    except Exception:  # noqa: BLE001 - a lost push must never fail the job that made it
        logger.warning("Could not publish %s for avatar %s", event, avatar.pk, exc_info=True)
