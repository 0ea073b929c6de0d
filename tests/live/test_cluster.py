"""The production layout on one machine: 2 web processes, 2 live lip-sync workers and a tts
worker on the suite's database and Redis (its own key prefix, so the suite's worker is not
part of it). Placement spreads avatars over the workers, viewers reach them through either
web process, a killed worker's avatars go inactive within seconds and its viewers are told,
a drained worker takes nothing new, warns its viewers and ends their sessions after the
grace period, and nothing is left pointing at a worker that is gone."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import httpx
import pytest

from tests.conftest import DaphneServer, WorkerProcess, wait_for
from tests.live.client import LiveClient

pytestmark = [pytest.mark.integration]

GRACE = 15


class Cluster:
    def __init__(self, env: dict, folder):
        self.env, self.folder = env, folder
        self.webs = [DaphneServer(env, folder / f"web{i}.log") for i in (1, 2)]
        self.workers: dict[str, WorkerProcess] = {}
        self.tts = WorkerProcess(env, folder / "tts.log", "tts", queues="tts")

    def worker_start(self, name: str) -> WorkerProcess:
        worker = WorkerProcess(self.env, self.folder / f"{name}.log", name, queues="live")
        self.workers[name] = worker
        return worker

    def stop(self) -> None:
        for process in [*self.workers.values(), self.tts]:
            process.stop()
        for web in self.webs:
            web.stop()


@pytest.fixture
def cluster(process_env, tmp_path):
    env = dict(
        process_env,
        REDIS_KEY_PREFIX=f"vt-cluster-{uuid.uuid4().hex[:8]}",
        LIVE_HEARTBEAT_SECONDS="1",
        LIVE_HEARTBEAT_TTL="4",
        LIVE_DRAIN_GRACE_SECONDS=str(GRACE),
        LIVE_MAX_ACTIVE_AVATARS_PER_ADMIN="10",
    )
    cluster = Cluster(env, tmp_path)
    try:
        for name in ("lipsync1", "lipsync2"):
            cluster.worker_start(name)
        yield cluster
    finally:
        cluster.stop()


def _http(web, token) -> httpx.Client:
    return httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {token}"}, timeout=150)


def _health_workers(http) -> dict[str, dict]:
    return {w["name"].split(" pid ")[0].split("@")[0]: w for w in http.get("/api/health").json()["live"]["workers"]}


def _worker_of(http, avatar_id) -> dict | None:
    return http.get(f"/api/avatars/{avatar_id}").json()["serving_worker"]


def _start(http, avatar_id) -> dict:
    response = http.post(f"/api/avatars/{avatar_id}/start?wait=1", json={})
    assert response.status_code == 200, response.text
    return _worker_of(http, avatar_id)


async def _viewer(web, avatar_id, token) -> LiveClient:
    client = LiveClient(web.ws_url, avatar_id, token, keep_frames=False)
    answer = await client.connect()
    assert answer["type"] == "answer", answer
    await client.wait_event(lambda e: e.get("type") == "state" and e.get("state") == "connected", 20)
    return client


def test_placement_spread_kill_and_drain(transactional_db, cluster, make_avatar, operator, token, admin_user):
    from rest_framework_simplejwt.tokens import RefreshToken

    web1, web2 = (_http(web, token) for web in cluster.webs)
    ops = _http(cluster.webs[0], str(RefreshToken.for_user(operator).access_token))
    wait_for(lambda: set(_health_workers(ops)) >= {"lipsync1", "lipsync2"}, timeout=60, message="both workers up")
    for facts in _health_workers(ops).values():
        assert facts["device"] == "cpu" and "viseme" in facts["engines"] and not facts["draining"]

    # Four starts, through both web processes: two avatars on each worker, each with its reason.
    avatars = [make_avatar(f"cluster_{i}") for i in range(4)]
    placed = {}
    for i, avatar in enumerate(avatars):
        serving = _start(web1 if i % 2 else web2, avatar.pk)
        assert serving["device"] == "cpu" and "most free capacity of 2 workers" in serving["reason"], serving
        placed[avatar.pk] = serving["name"]
    names = sorted(set(placed.values()))
    assert len(names) == 2 and sorted(placed.values()).count(names[0]) == 2, placed
    health = ops.get("/api/health").json()["live"]
    assert {p["avatar_id"] for p in health["placements"]} >= set(placed)

    async def scenario():
        a, b = avatars[0], next(x for x in avatars if placed[x.pk] != placed[avatars[0].pk])
        viewer_a = await _viewer(cluster.webs[0], a.pk, token)  # through web 1
        viewer_b = await _viewer(cluster.webs[1], b.pk, token)  # through web 2
        await viewer_b.send({"type": "say", "text": "Hello class."})
        await viewer_b.wait_event(lambda e: e.get("type") == "speaking_started", 30)

        # SIGKILL the worker serving b: its viewer is told, its avatars go inactive in seconds.
        killed = next(w for w in cluster.workers.values() if placed[b.pk].startswith(w.name + "@"))
        killed.kill()
        error = await viewer_b.wait_event(lambda e: e.get("type") == "error", 20)
        assert "stopped responding" in error["detail"]
        on_killed = [pk for pk, name in placed.items() if name == placed[b.pk]]
        await asyncio.to_thread(
            wait_for,
            lambda: all(web2.get(f"/api/avatars/{pk}").json()["status"] == "inactive" for pk in on_killed),
            15,
            message="the killed worker's avatars inactive",
        )
        detail = web2.get(f"/api/avatars/{b.pk}").json()
        assert "stopped responding" in detail["error_message"]
        # Started again: it lands on the worker that is left.
        survivor = await asyncio.to_thread(_start, web2, b.pk)
        assert survivor["name"] == placed[a.pk] and "the only worker able to run viseme" in survivor["reason"]
        await viewer_b.close(bye=False)

        # A third worker joins; then SIGTERM a's worker: drain. Its avatars are warmed on the new
        # worker at once (nothing else can take them), its viewer is warned, new sessions open
        # on the new worker while the old one finishes.
        await asyncio.to_thread(cluster.worker_start, "lipsync3")
        await asyncio.to_thread(
            wait_for, lambda: "lipsync3" in _health_workers(ops), 30, message="the new worker registered"
        )
        draining = next(w for w in cluster.workers.values() if placed[a.pk].startswith(w.name + "@"))
        os.killpg(draining.proc.pid, signal.SIGTERM)
        notice = await viewer_a.wait_event(lambda e: e.get("type") == "draining", 15)
        assert (
            notice["grace_seconds"] == GRACE
            and notice["moving"] is True
            and "Reconnect to continue" in notice["detail"]
        ), notice
        assert _health_workers(ops)[draining.name]["draining"] is True
        await asyncio.to_thread(
            wait_for,
            lambda: all((_worker_of(web1, x.pk) or {}).get("name", "").startswith("lipsync3@") for x in (a, b)),
            30,
            message="a and b moved to the new worker",
        )
        assert draining.proc.poll() is None  # still in its grace period, its viewer still served
        viewer_a2 = await _viewer(cluster.webs[1], a.pk, token)

        # The grace period ends: the old viewer's session is closed, the worker exits.
        closed = await viewer_a.wait_event(
            lambda e: e.get("type") == "state" and e.get("state") == "closed", GRACE + 15
        )
        assert "shut down" in closed["reason"]
        await asyncio.to_thread(draining.proc.wait, 30)
        await viewer_a.close(bye=False)
        await viewer_a2.send({"type": "say", "text": "Still here."})
        await viewer_a2.wait_event(lambda e: e.get("type") == "speaking_started", 30)
        await viewer_a2.close()

    asyncio.run(scenario())

    # Nothing points at a worker that is gone.
    assert set(_health_workers(ops)) == {"lipsync3"}
    for avatar in avatars:
        serving = _worker_of(web1, avatar.pk)
        assert serving is None or serving["name"].startswith("lipsync3@"), (avatar.pk, serving)
    assert ops.get("/api/health").json()["live"]["avatars_on_dead_workers"] == []
