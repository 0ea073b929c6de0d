"""Reads about live serving: which active avatars lost their worker (no heartbeat), and how
an avatar converses in its sessions."""

from __future__ import annotations

from contracts import live_registry as registry

from .models import Avatar, AvatarStatus


def avatars_on_dead_workers() -> list[int]:
    """Ids of avatars marked active on a worker whose heartbeat expired (the worker-side
    reconciler resets them within a heartbeat; until then they show here)."""
    rows = Avatar.objects.filter(status=AvatarStatus.ACTIVE).exclude(serving_channel="")
    dead = {
        channel for channel in set(rows.values_list("serving_channel", flat=True)) if not registry.worker_alive(channel)
    }
    return sorted(pk for pk, channel in rows.values_list("pk", "serving_channel") if channel in dead)


def placements(limit: int = 200) -> list[dict]:
    """Started avatars and where placement put them, for the operators' health page."""
    rows = Avatar.objects.filter(status=AvatarStatus.ACTIVE).exclude(serving_channel="").order_by("pk")[:limit]
    return [
        {"avatar_id": a.pk, "worker": a.serving_worker, "device": a.serving_device, "reason": a.serving_reason}
        for a in rows.only("pk", "serving_worker", "serving_device", "serving_reason")
    ]


def live_conversation_settings(avatar_id: int) -> dict:
    """How the avatar converses, read when a live session opens (so an edit applies to the
    next session without a restart): who it is, what it says first, how it hears and answers."""
    row = (
        Avatar.objects.filter(pk=avatar_id)
        .values("name", "display_name", "persona", "greeting", "language", "asr_model", "llm_model")
        .first()
    )
    if row is None:
        return {}
    row["avatar_name"] = row.pop("display_name") or row.pop("name")
    row.pop("name", None)
    return row
