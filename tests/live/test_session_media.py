"""A live session end to end: aiortc viewer -> real daphne (signaling) -> real Redis
channel layer -> real worker (aiortc peer, viseme engine, piper through the tts queue)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from tests.conftest import wait_for
from tests.live.client import LiveClient, fps_between, loud, mouth_motion

pytestmark = [pytest.mark.integration]

INTERRUPT_BOUND_MS = 200


def _worker_sessions(avatar) -> int:
    from contracts import live_registry as registry

    avatar.refresh_from_db()
    return registry.workers()[avatar.serving_channel]["sessions"]


def test_session_streams_idle_speaks_interrupts_and_frees(started_avatar, daphne_server, token, live_assets):
    from django.core.files.storage import default_storage

    from lipsync_worker.assets import AvatarAssets

    assets = AvatarAssets.from_dir(default_storage.path(live_assets[0]))
    import cv2

    idle = [cv2.cvtColor(assets.frame(i), cv2.COLOR_BGR2GRAY)[::2, ::2] for i in range(assets.frame_count)]
    result = {}

    async def scenario():
        client = LiveClient(daphne_server.ws_url, started_avatar.pk, token)
        answer = await client.connect()
        assert answer["type"] == "answer", answer
        await client.wait_event(lambda e: e.get("type") == "state" and e.get("state") == "connected", 20)
        # Idle: 2 s of frames at 25 fps and silence.
        await asyncio.sleep(1.0)
        t0 = time.monotonic()
        await asyncio.sleep(2.0)
        result["idle_fps"] = fps_between(client.recorder.video, t0, time.monotonic())
        result["idle_loud"] = [r for t, _p, r in client.recorder.audio if t >= t0 and loud(r)]
        idle_frames = len(client.recorder.frames)

        said = await client.send(
            {
                "type": "say",
                "text": "Hello there, students. Today we will learn about "
                "the planets of our solar system and their moons.",
            }
        )
        started = await client.wait_event(lambda e: e.get("type") == "speaking_started", 20)
        result["started_latency_ms"] = started["latency_ms"]
        first_loud = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and first_loud is None:
            first_loud = next((t for t, _p, r in client.recorder.audio if t > said and loud(r)), None)
            await asyncio.sleep(0.02)
        result["say_to_sound_ms"] = (first_loud - said) * 1000 if first_loud else None
        await asyncio.sleep(1.5)
        result["speech_frames"] = client.recorder.frames[idle_frames:]
        result["idle_frames"] = client.recorder.frames[5:idle_frames]
        t_int = await client.send({"type": "interrupt"})
        ended = await client.wait_event(lambda e: e.get("type") == "speaking_ended", 5)
        result["ended"] = ended
        await asyncio.sleep(1.0)
        loud_after = [t for t, _p, r in client.recorder.audio if t > t_int and loud(r)]
        result["interrupt_ms"] = (max(loud_after) - t_int) * 1000 if loud_after else 0.0
        result["words"] = [e for _t, e in client.events if e.get("type") == "word"]
        result["speaking_fps"] = fps_between(client.recorder.video, said + 0.5, said + 2.5)
        result["sessions_open"] = client.session_id
        await client.close(bye=True)
        result["closed_events"] = [e for _t, e in client.events if e.get("type") == "state"]

    asyncio.run(scenario())

    assert 22 <= result["idle_fps"] <= 28, result["idle_fps"]
    assert not result["idle_loud"], "the idle loop must be silent"
    assert result["say_to_sound_ms"] is not None, "say produced no audible audio"
    assert 22 <= result["speaking_fps"] <= 28, result["speaking_fps"]
    assert result["words"], "no subtitles (word events)"
    motion_idle = mouth_motion(result["idle_frames"], idle)
    motion_speech = mouth_motion(result["speech_frames"], idle)
    assert np.percentile(motion_speech, 75) > 2 * np.percentile(motion_idle, 75) + 5, (
        np.percentile(motion_idle, 75),
        np.percentile(motion_speech, 75),
    )
    assert result["ended"]["interrupted"] is True
    assert result["interrupt_ms"] <= INTERRUPT_BOUND_MS + 150, result["interrupt_ms"]  # + network and jitter buffer
    assert any(e.get("state") == "closed" for e in result["closed_events"])
    # bye freed the session on the worker.
    wait_for(lambda: _worker_sessions(started_avatar) == 0, timeout=10, message="the worker to drop the session")
    from contracts import live_registry as registry

    assert registry.session_get(result["sessions_open"]) is None
