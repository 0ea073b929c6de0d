"""Usage recorded by the real code paths: a live session on the real worker (opened, two
sentences said, a typed question answered, closed) and a clip rendered by it; the usage
API then says exactly that."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import wait_for
from tests.live.client import LiveClient
from tests.live.conftest import _loopback_ice, live_assets, make_avatar, started_avatar, token  # noqa: F401

pytestmark = [pytest.mark.integration]


def _totals(api, avatar_id) -> dict:
    response = api.get("/api/analytics/usage", {"avatar_id": avatar_id})
    assert response.status_code == 200, response.content
    return response.json()["totals"]


def test_a_session_and_a_render_are_counted_as_they_happened(started_avatar, daphne_server, token, api):  # noqa: F811
    seen = {}

    async def scenario():
        client = LiveClient(daphne_server.ws_url, started_avatar.pk, token, keep_frames=False)
        assert (await client.connect())["type"] == "answer"
        opened = time.monotonic()
        await client.wait_event(lambda e: e.get("state") == "connected", 20)
        for sentence in ("Hello class, welcome back.", "Today we count to ten."):
            await client.send({"type": "say", "text": sentence})
            await client.wait_event(lambda e: e.get("type") == "speaking_ended", 30)
        await client.send({"type": "ask", "text": "What is the capital of France?"})
        turn = await client.wait_event(lambda e: e.get("type") == "turn", 30)
        await client.wait_event(lambda e: e.get("type") == "turn_ended", 30)
        await client.close(bye=True)
        seen["seconds"] = time.monotonic() - opened
        seen["first_frame_ms"] = turn["latencies"]["first_frame_ms"]
        seen["spoken"] = [e for _t, e in client.events if e.get("type") == "speaking_started"]

    asyncio.run(scenario())
    totals = wait_for(
        lambda: (t := _totals(api, started_avatar.pk))["session_minutes"] > 0 and t, 20, message="the session recorded"
    )
    assert totals["sessions"] == 1
    assert abs(totals["session_minutes"] * 60 - seen["seconds"]) < 2.0
    # Every utterance the viewer saw start: the two sentences and the answer's.
    assert totals["utterances"] == len(seen["spoken"]) >= 3
    assert 0 < totals["spoken_minutes"] * 60 < seen["seconds"]
    assert totals["answers"] == 1
    assert abs(totals["answer_latency_p50_ms"] - seen["first_frame_ms"]) <= max(30, 0.2 * seen["first_frame_ms"])
    assert totals["renders"] == 0 and totals["errors"] == 0

    response = api.post(f"/api/avatars/{started_avatar.pk}/render", {"text": "One, two, three."}, format="json")
    assert response.status_code == 202, response.content
    render_id = response.json()["id"]

    def done():
        (render,) = [r for r in api.get(f"/api/avatars/{started_avatar.pk}/renders").json() if r["id"] == render_id]
        assert render["status"] != "error", render
        return render if render["status"] == "done" else None

    render = wait_for(done, 120, message="the clip rendered")
    totals = _totals(api, started_avatar.pk)
    assert totals["renders"] == 1
    assert totals["rendered_minutes"] == round(render["duration_seconds"] / 60, 2)
