"""Start / stop, tenancy, bad signaling, the LiveTalking HTTP proxy, limits and a worker
that dies while serving an avatar."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from rest_framework_simplejwt.tokens import RefreshToken
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.conftest import wait_for
from tests.live.client import LiveClient, Recorder, new_peer

pytestmark = [pytest.mark.integration]


def _token(user) -> str:
    return str(RefreshToken.for_user(user).access_token)


def test_start_needs_a_ready_avatar_and_is_scoped(transactional_db, celery_worker_process, api, other_api, make_avatar):
    processing = make_avatar("still_processing", status="processing", progress_percent=40)
    response = api.post(f"/api/avatars/{processing.pk}/start", {}, format="json")
    assert response.status_code == 409 and "processed" in response.json()["detail"]
    broken = make_avatar("broken", status="error", error_message="No face was found.")
    response = api.post(f"/api/avatars/{broken.pk}/start", {}, format="json")
    assert response.status_code == 409 and "No face was found" in response.json()["detail"]

    avatar = make_avatar()
    assert other_api.post(f"/api/avatars/{avatar.pk}/start", {}, format="json").status_code == 404
    assert api.post(f"/api/avatars/{avatar.pk}/start", {"bogus": 1}, format="json").status_code == 400
    response = api.post(f"/api/avatars/{avatar.pk}/start", {"ref_file": "../../etc/passwd"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "ref_file"

    response = api.post(f"/api/avatars/{avatar.pk}/start?wait=1", {}, format="json")
    assert response.status_code == 200, (response.content, celery_worker_process.log())
    body = response.json()
    assert body["status"] == "success" and body["message"] == "Avatar 'live_ada' started successfully"
    assert body["engine_url"].endswith("/api/avatars/webrtc")
    detail = api.get(f"/api/avatars/{avatar.pk}").json()
    assert detail["status"] == "active"
    avatar.refresh_from_db()
    assert avatar.serving_worker and avatar.serving_channel
    # Idempotent.
    assert api.post(f"/api/avatars/{avatar.pk}/start?wait=1", {}, format="json").status_code == 200

    assert other_api.post(f"/api/avatars/{avatar.pk}/stop").status_code == 404
    response = api.post(f"/api/avatars/{avatar.pk}/stop")
    assert response.status_code == 200 and response.json()["status"] == "success"
    avatar.refresh_from_db()
    assert avatar.status == "inactive" and not avatar.serving_channel
    from contracts import live_registry as registry

    wait_for(
        lambda: all(avatar.pk not in w["avatars"] for w in registry.workers().values()),
        timeout=10,
        message="the worker to release the avatar",
    )


def test_strangers_and_bad_messages(started_avatar, daphne_server, admin_user, other_admin, token, client_for):
    url = f"{daphne_server.ws_url}/ws/avatars/{started_avatar.pk}/session/"
    # Another admin, no token, a bad token: closed, nothing leaked.
    for kwargs in ({"subprotocols": [f"bearer.{_token(other_admin)}"]}, {}, {"subprotocols": ["bearer.nope"]}):
        with pytest.raises((ConnectionClosed, InvalidStatus)):
            with connect(url, open_timeout=10, **kwargs) as ws:
                ws.recv(timeout=10)
    # Another admin through the proxy: 404 for the offer, and for a real session id.
    other = client_for(other_admin)
    response = other.post(
        "/api/avatars/webrtc/offer", {"sdp": "v=0\r\n", "type": "offer", "avatar_id": started_avatar.pk}, format="json"
    )
    assert response.status_code == 404

    with connect(url, subprotocols=[f"bearer.{token}"], open_timeout=10, max_size=2**22) as ws:
        assert json.loads(ws.recv(timeout=10))["state"] == "ready"
        for raw, expected in (
            ("not json", "JSON"),
            (json.dumps({"type": "dance"}), "Unknown message type"),
            (json.dumps([1, 2]), "JSON"),
            (json.dumps({"type": "say", "text": "hi"}), "offer first"),
            (json.dumps({"type": "offer", "sdp": 42}), "sdp"),
        ):
            ws.send(raw)
            event = json.loads(ws.recv(timeout=10))
            assert event["type"] == "error" and expected in event["detail"], (raw, event)
        ws.send("x" * 70000)
        assert json.loads(ws.recv(timeout=10))["type"] == "error"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    with connect(url, subprotocols=[f"bearer.{token}"], open_timeout=10) as ws:
        ws.recv(timeout=10)
        with pytest.raises(ConnectionClosed):
            for _ in range(200):
                ws.send(json.dumps({"type": "interrupt"}))
            while True:
                ws.recv(timeout=10)
    # The worker is still fine: a real session opens, and is seen by its owner only.
    result = {}

    async def scenario():
        client = LiveClient(daphne_server.ws_url, started_avatar.pk, token, keep_frames=False)
        result["answer"] = await client.connect()
        result["session"] = client.session_id
        await client.wait_event(lambda e: e.get("state") == "connected", 20)
        await asyncio.get_running_loop().run_in_executor(None, _stranger_checks, other, client.session_id, result)
        await client.close()

    asyncio.run(scenario())
    assert result["answer"]["type"] == "answer"
    assert result["stranger"] == [404, 404, 404]


def _stranger_checks(other, session_id, result):
    result["stranger"] = [
        other.post(
            "/api/avatars/webrtc/human", {"sessionid": session_id, "text": "hi", "type": "echo"}, format="json"
        ).status_code,
        other.post("/api/avatars/webrtc/is_speaking", {"sessionid": session_id}, format="json").status_code,
        other.post("/api/avatars/webrtc/interrupt_talk", {"sessionid": session_id}, format="json").status_code,
    ]


def proxy_call(server, bearer: str, path: str, body: dict) -> tuple[int, dict]:
    """(status, JSON) of a POST to the LiveTalking-style proxy."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{server.url}/api/avatars/webrtc/{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": bearer, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_livetalking_proxy(started_avatar, daphne_server, api):
    """offer / human / is_speaking / interrupt_talk over HTTP, with an aiortc viewer."""
    bearer = api._credentials["HTTP_AUTHORIZATION"]

    def call(path, body):
        return proxy_call(daphne_server, bearer, path, body)[1]

    result = {}

    async def scenario():
        from aiortc import RTCSessionDescription

        loop = asyncio.get_running_loop()
        recorder = Recorder(keep_frames=False)
        pc = new_peer(recorder)
        await pc.setLocalDescription(await pc.createOffer())
        answer = await loop.run_in_executor(
            None, call, "offer", {"sdp": pc.localDescription.sdp, "type": "offer", "avatar_id": started_avatar.pk}
        )
        assert answer["type"] == "answer" and answer["sessionid"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        sid = answer["sessionid"]
        result["idle"] = (await loop.run_in_executor(None, call, "is_speaking", {"sessionid": sid}))["data"]
        result["human"] = await loop.run_in_executor(
            None,
            call,
            "human",
            {"sessionid": sid, "text": "Good morning, class. Let us begin.", "type": "echo", "interrupt": True},
        )
        deadline = time.monotonic() + 10
        speaking = False
        while time.monotonic() < deadline and not speaking:
            speaking = (await loop.run_in_executor(None, call, "is_speaking", {"sessionid": sid}))["data"]
        result["speaking"] = speaking
        await loop.run_in_executor(None, call, "interrupt_talk", {"sessionid": sid})
        await asyncio.sleep(0.3)
        result["after"] = (await loop.run_in_executor(None, call, "is_speaking", {"sessionid": sid}))["data"]
        result["frames"] = len(recorder.video)
        await pc.close()
        recorder.stop()

    asyncio.run(scenario())
    assert result["idle"] is False
    assert result["human"] == {"code": 0, "msg": "ok"}
    assert result["speaking"] is True and result["after"] is False
    assert result["frames"] >= 5
    bad = api.post("/api/avatars/webrtc/human", {"sessionid": "nope", "text": "x"}, format="json")
    assert bad.status_code == 404
    assert api.post("/api/avatars/webrtc/teleport", {}, format="json").status_code == 404
    assert (
        api.post(
            "/api/avatars/webrtc/offer", {"sdp": "hello", "avatar_id": started_avatar.pk}, format="json"
        ).status_code
        == 400
    )


def test_limits_and_a_dead_worker(
    transactional_db,
    celery_worker_process,
    start_worker,
    daphne_server,
    api,
    admin_user,
    other_admin,
    make_avatar,
    token,
):
    """A worker with low limits refuses clearly; when it dies its avatar is reported and
    can be started again elsewhere."""
    from lipsync_worker.tasks import live_start_task
    from tutors.services import tutor_create

    extra = start_worker(
        "live-extra",
        queues="live-test",
        LIVE_HEARTBEAT_TTL=3,
        LIVE_HEARTBEAT_SECONDS=1,
        LIVE_MAX_SESSIONS_PER_WORKER=2,
        LIVE_MAX_SESSIONS_PER_ADMIN=1,
    )
    mine = make_avatar("mine")
    theirs = make_avatar("theirs", owner_tutor=tutor_create(owner=other_admin, name="Bob's tutor"))
    for avatar in (mine, theirs):
        outcome = live_start_task.apply_async(args=[avatar.pk, "", ""], queue="live-test").get(timeout=60)
        assert outcome["status"] == "active", (outcome, extra.log())
    other_token = _token(other_admin)
    result = {}

    async def scenario():
        a1 = LiveClient(daphne_server.ws_url, mine.pk, token, keep_frames=False)
        result["a1"] = await a1.connect()
        a2 = LiveClient(daphne_server.ws_url, mine.pk, token, keep_frames=False)
        result["a2"] = await a2.connect()  # per-admin limit (1)
        b1 = LiveClient(daphne_server.ws_url, theirs.pk, other_token, keep_frames=False)
        result["b1"] = await b1.connect()
        b2 = LiveClient(daphne_server.ws_url, theirs.pk, other_token, keep_frames=False)
        result["b2"] = await b2.connect()  # per-worker limit (2)
        for client in (a2, b2, b1, a1):
            await client.close(bye=False)

    asyncio.run(scenario())
    assert result["a1"]["type"] == "answer" and result["b1"]["type"] == "answer", result
    assert result["a2"]["type"] == "error" and "per admin" in result["a2"]["detail"], result["a2"]
    assert result["b2"]["type"] == "error" and "LIVE_MAX_SESSIONS_PER_WORKER" in result["b2"]["detail"], result["b2"]

    extra.kill()
    # The heartbeat expires (TTL 3 s) and the surviving worker resets the avatar.
    wait_for(
        lambda: api.get(f"/api/avatars/{mine.pk}").json()["status"] == "inactive",
        timeout=20,
        message="the avatar of the killed worker to be reset",
    )
    body = api.get(f"/api/avatars/{mine.pk}").json()
    assert "stopped responding" in body["error_message"]
    import urllib.request

    from tutors.services import admin_create

    operator, _ = admin_create(email="ops@school.test", password="operator-secret-42", superuser=True)
    request = urllib.request.Request(
        f"{daphne_server.url}/api/health",
        headers={"Authorization": f"Bearer {RefreshToken.for_user(operator).access_token}"},
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        health = json.loads(response.read())
    assert mine.pk not in health["live"]["avatars_on_dead_workers"]
    # A session on it is refused clearly, and start works again (on the main worker).
    url = f"{daphne_server.ws_url}/ws/avatars/{mine.pk}/session/"
    with connect(url, subprotocols=[f"bearer.{token}"], open_timeout=10) as ws:
        event = json.loads(ws.recv(timeout=10))
        assert event["type"] == "error" and "not started" in event["detail"]
    response = api.post(f"/api/avatars/{mine.pk}/start?wait=1", {}, format="json")
    assert response.status_code == 200, response.content
    api.post(f"/api/avatars/{mine.pk}/stop")


@pytest.mark.django_db
def test_proxy_actions_that_change_things_refuse_get(api):
    for action in ("offer", "human", "interrupt_talk"):
        response = api.get(f"/api/avatars/webrtc/{action}", {"sessionid": "x", "text": "hi", "avatar_id": 1})
        assert response.status_code == 405, (action, response.content)
        assert "send it as POST" in response.json()["detail"]
    # The query stays available over GET (an unknown session is a clear 4xx, not a 405).
    assert api.get("/api/avatars/webrtc/is_speaking", {"sessionid": "nope"}).status_code in (400, 404, 409)


def test_a_revoked_grantee_loses_its_proxy_session_at_once(started_avatar, daphne_server, admin_user, other_admin):
    """A session opened through the HTTP proxy has no socket to close: revoking the share
    ends it on the worker, and the grantee's next call is a 404."""
    from avatars.share_services import avatar_share_create, avatar_share_delete
    from contracts import live_registry as registry

    share, _ = avatar_share_create(started_avatar, by=admin_user, email=other_admin.email, permission="use")
    bearer = f"Bearer {RefreshToken.for_user(other_admin).access_token}"

    def call(path, body):
        return proxy_call(daphne_server, bearer, path, body)

    async def scenario():
        from aiortc import RTCSessionDescription

        loop = asyncio.get_running_loop()
        pc = new_peer(Recorder(keep_frames=False))
        await pc.setLocalDescription(await pc.createOffer())
        status, answer = await loop.run_in_executor(
            None, call, "offer", {"sdp": pc.localDescription.sdp, "type": "offer", "avatar_id": started_avatar.pk}
        )
        assert status == 200, answer
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        session_id = answer["sessionid"]
        try:
            assert registry.session_get(session_id) is not None
            await loop.run_in_executor(None, avatar_share_delete, share)
            deadline = time.monotonic() + 10
            while registry.session_get(session_id) is not None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert registry.session_get(session_id) is None, "the worker did not end the session"
            status, _ = await loop.run_in_executor(None, call, "is_speaking", {"sessionid": session_id})
            assert status == 404
        finally:
            await pc.close()

    asyncio.run(scenario())
