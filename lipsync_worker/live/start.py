"""The worker side of Start: warm the avatar in this process and record that we serve it."""

from __future__ import annotations

import logging

from avatars import live_services
from avatars.models import Avatar
from contracts import live_registry as registry

from .runtime import runtime_current, runtime_get

logger = logging.getLogger(__name__)


def live_avatar_warm_up(
    avatar_id: int, ref_file: str = "", engine_url: str = "", worker_name: str = "", placement_reason: str = ""
) -> dict:
    """Idempotent: warming an avatar this process already serves only refreshes it. Success
    is recorded by `avatar_live_started`; a failure is reported with its reason through
    `avatar_live_start_failed` (the web answered the start at once and waits for either)."""
    try:
        outcome = _warm_up(avatar_id, ref_file, engine_url, worker_name, placement_reason)
    except Exception as exc:
        logger.exception("Start of avatar %s failed", avatar_id)
        reason = getattr(exc, "detail", None) or "The start failed on the worker (the error is in its log)."
        _start_failed(avatar_id, reason)
        raise
    if outcome.get("status") != "active":
        _start_failed(avatar_id, outcome.get("detail") or outcome.get("status", ""))
    return outcome


def _start_failed(avatar_id: int, reason: str) -> None:
    runtime = runtime_current()
    if runtime is not None and runtime.channel:  # placement no longer counts it here
        registry.placing_remove(runtime.channel, avatar_id)
    live_services.avatar_live_start_failed(avatar_id, reason)


def _warm_up(avatar_id: int, ref_file: str, engine_url: str, worker_name: str, placement_reason: str) -> dict:
    avatar = Avatar.objects.filter(pk=avatar_id).first()
    if avatar is None:
        return {"status": "gone", "detail": f"Avatar {avatar_id} no longer exists."}
    if not avatar.is_ready or not avatar.assets_path:
        return {"status": "not_ready", "detail": f"Avatar '{avatar.name}' is {avatar.status}; it cannot be started."}
    reference_path, reference_text = live_services.avatar_reference_for_start(avatar, ref_file)
    runtime = runtime_get(worker_name)
    if runtime.draining:
        return {"status": "error", "detail": "The lip-sync worker is shutting down; start the avatar again."}
    try:
        runtime.avatar_add(avatar, reference_path=reference_path, reference_text=reference_text)
    except Exception:  # reported to the caller, the worker keeps serving
        logger.exception("Warm-up of avatar %s failed", avatar_id)
        return {
            "status": "error",
            "detail": "The avatar could not be loaded on the worker (the error is in its log).",
        }
    serving = live_services.avatar_live_started(
        avatar_id,
        serving_worker=runtime.name,
        serving_channel=runtime.channel,
        engine_url=engine_url,
        serving_device=runtime.device,
        placement_reason=placement_reason or "the worker that took the start",
    )
    if serving is None:
        runtime.call(runtime.avatar_remove(avatar_id))
        return {"status": "gone", "detail": f"Avatar {avatar_id} was deleted or changed while starting."}
    if serving.serving_channel != runtime.channel:
        # Another worker won a concurrent start: leave the avatar to it.
        runtime.call(runtime.avatar_remove(avatar_id))
    return {"status": "active", "serving_worker": serving.serving_worker, "serving_channel": serving.serving_channel}
