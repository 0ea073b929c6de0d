"""GET /api/health: can this deployment serve? Database, Redis, and which workers answer.

Anyone (a load balancer) gets `{"status"}` only; operators signed in get the details:
the errors, worker names, live runtimes. It writes nothing."""

import time

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .celery import app as celery_app


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # noqa: BLE001 - health reports, it does not raise
        return f"error: {exc}"


def _redis() -> str:
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1).ping()
        return "ok"
    except Exception as exc:  # noqa: BLE001
        return f"error: {exc}"


def workers_by_queue(timeout: float = 1.0) -> dict:
    """Queue name -> worker names that consume it (empty when none answer)."""
    queues: dict[str, list[str]] = {"lipsync": [], "tts": []}
    try:
        active = celery_app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception:  # noqa: BLE001
        active = {}
    for worker, worker_queues in active.items():
        for queue in worker_queues:
            queues.setdefault(queue["name"], []).append(worker)
    return queues


def _live() -> dict:
    """Live runtimes with a heartbeat, and active avatars whose worker has none. Read only:
    health writes nothing (those avatars are reset when someone starts or opens them)."""
    from avatars.live_selectors import avatars_on_dead_workers, placements
    from contracts import live_registry as registry

    try:
        runtimes = registry.workers()
        stale = avatars_on_dead_workers()
    except Exception as exc:  # noqa: BLE001 - health reports, it does not raise
        return {"error": str(exc)}
    return {
        "workers": [
            {
                "name": facts.get("name"),
                "device": facts.get("device", ""),
                "engines": facts.get("engines", []),
                "sessions": facts.get("sessions", 0),
                "free_sessions": facts.get("max_sessions", 0) - facts.get("sessions", 0),
                "draining": bool(facts.get("draining")),
                "avatars": facts.get("avatars", []),
            }
            for facts in runtimes.values()
        ],
        "placements": placements(),
        "sessions": sum(facts.get("sessions", 0) for facts in runtimes.values()),
        "avatars_on_dead_workers": stale,
    }


class HealthView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT})
    def get(self, request):
        started = time.monotonic()
        database, redis_state = _database(), _redis()
        # Asking the workers waits for the broadcast timeout: share one answer for a few seconds.
        workers = (
            cache.get_or_set("health:workers", lambda: workers_by_queue(timeout=0.5), 5)
            if redis_state == "ok"
            else {"lipsync": [], "tts": []}
        )
        ok = database == "ok" and redis_state == "ok"
        status = 200 if ok else 503
        if not (request.user and request.user.is_authenticated and request.user.is_superuser):
            return Response({"status": "ok" if ok else "error"}, status=status)
        live = _live() if ok else {}
        body = {
            "status": "ok" if ok else "error",
            "database": database,
            "redis": redis_state,
            "workers": {queue: {"count": len(names), "names": names} for queue, names in workers.items()},
            "live": live,
            "checked_in_ms": round((time.monotonic() - started) * 1000),
        }
        return Response(body, status=status)
