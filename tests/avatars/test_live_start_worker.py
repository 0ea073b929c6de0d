"""Start with a real lipsync worker: the request is answered at once (202 + job) and the
worker's outcome arrives on the avatar's events channel (`avatar.started`, or
`avatar.start_failed` with the reason) and from GET /api/avatars/{id}/start?job_id=."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from avatars.events import avatar_group_name
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration]


class Events:
    """What a client of WS /ws/avatars/{id}/events/ receives (the group the consumer relays)."""

    def __init__(self, avatar_id: int):
        self.layer = get_channel_layer()
        self.group = avatar_group_name(avatar_id)
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(self.group, self.channel)

    def until(self, event: str, timeout: float = 60.0) -> tuple[dict, list[str]]:
        seen, deadline = [], time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {event} within {timeout:.0f} s; saw {seen}"
            message = async_to_sync(self._receive)(remaining)
            seen.append(message["event"])
            if message["event"] == event:
                return message, seen

    async def _receive(self, timeout: float) -> dict:
        return await asyncio.wait_for(self.layer.receive(self.channel), timeout)

    def close(self):
        async_to_sync(self.layer.group_discard)(self.group, self.channel)


def test_start_answers_at_once_and_the_worker_reports_the_outcome(
    transactional_db, celery_worker_process, api, make_avatar
):
    avatar = make_avatar("async_ada")
    events = Events(avatar.pk)
    try:
        began = time.monotonic()
        response = api.post(f"/api/avatars/{avatar.pk}/start", {}, format="json")
        assert response.status_code == 202, response.content
        assert time.monotonic() - began < 5  # queued, not waited for
        job_id = response.json()["job_id"]

        started, seen = events.until("avatar.started")
        assert seen[0] == "avatar.starting", seen
        assert started["avatar"]["status"] == "active" and started["avatar"]["starting"] is False
        assert started["job"]["job_id"] == job_id, (started, celery_worker_process.log())
        job = wait_for(
            lambda: (
                (r := api.get(f"/api/avatars/{avatar.pk}/start", {"job_id": job_id})).status_code == 200 and r.json()
            ),
            timeout=20,
            message="the job's result",
        )
        assert job["status"] == "active" and job["avatar"]["status"] == "active"
        assert api.post(f"/api/avatars/{avatar.pk}/stop").status_code == 200
    finally:
        events.close()

    # An avatar the worker cannot load: the reason comes back the same way.
    broken = make_avatar("no_assets_ada", assets_path="live-test/nothing-here")
    events = Events(broken.pk)
    try:
        response = api.post(f"/api/avatars/{broken.pk}/start", {}, format="json")
        assert response.status_code == 202, response.content
        failed, _seen = events.until("avatar.start_failed")
        reason = failed["job"]["detail"]
        assert reason and failed["avatar"]["error_message"] == f"Start failed: {reason}", failed
        assert failed["avatar"]["status"] == "inactive"
        job = wait_for(
            lambda: (
                (r := api.get(f"/api/avatars/{broken.pk}/start", {"job_id": response.json()["job_id"]})).status_code
                == 200
                and r.json()
            ),
            timeout=20,
            message="the job's result",
        )
        assert job["status"] == "failed" and job["detail"] == reason
    finally:
        events.close()
