"""Progress pushed over WS /ws/avatars/{id}/events/ by the real daphne server, and /api/health."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework_simplejwt.tokens import RefreshToken
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests import media

pytestmark = [pytest.mark.integration]


def _token(user) -> str:
    return str(RefreshToken.for_user(user).access_token)


def test_events_socket_pushes_progress_until_ready(
    transactional_db, daphne_server, celery_worker_process, api, admin_user, tutor, tmp_path
):
    # Long enough that processing is still under way when the socket connects.
    video = media.write_video(tmp_path / "long.mp4", media.face_frames(seconds=10))
    response = api.post(
        "/api/avatars/create",
        {
            "tutor_id": tutor.pk,
            "name": "live_progress",
            "prompt_face": SimpleUploadedFile("v.mp4", video.read_bytes()),
        },
        format="multipart",
    )
    avatar_id = response.json()["id"]
    url = f"{daphne_server.ws_url}/ws/avatars/{avatar_id}/events/"
    seen = []
    with connect(url, subprotocols=[f"bearer.{_token(admin_user)}"], open_timeout=10) as ws:
        while True:
            message = json.loads(ws.recv(timeout=60))
            seen.append(message)
            if message["avatar"]["status"] != "processing":
                break
    assert seen[0]["event"] == "avatar.state"
    percents = [m["avatar"]["progress"]["percent"] for m in seen if m["event"] == "avatar.progress"]
    assert percents and percents == sorted(percents), percents
    assert seen[-1]["event"] == "avatar.ready"
    assert seen[-1]["avatar"]["status"] == "inactive" and seen[-1]["avatar"]["has_preview"]


def test_events_socket_refuses_strangers(transactional_db, daphne_server, api, other_admin, tutor, face_video):
    response = api.post(
        "/api/avatars/create",
        {"tutor_id": tutor.pk, "name": "private", "prompt_face": SimpleUploadedFile("v.mp4", face_video.read_bytes())},
        format="multipart",
    )
    avatar_id = response.json()["id"]
    url = f"{daphne_server.ws_url}/ws/avatars/{avatar_id}/events/"
    for kwargs in ({"subprotocols": [f"bearer.{_token(other_admin)}"]}, {}, {"subprotocols": ["bearer.garbage"]}):
        with pytest.raises((ConnectionClosed, InvalidStatus)) as info:
            with connect(url, open_timeout=10, **kwargs) as ws:
                ws.recv(timeout=10)
        assert "private" not in str(info.value)
    # A browser page from another site is refused by the Origin check.
    with pytest.raises((ConnectionClosed, InvalidStatus)):
        with connect(url + f"?token={_token(other_admin)}", origin="https://evil.example", open_timeout=10) as ws:
            ws.recv(timeout=10)


def test_health_reports_database_redis_and_workers(transactional_db, daphne_server, celery_worker_process, operator):
    import urllib.request

    # Anyone gets the status only.
    with urllib.request.urlopen(f"{daphne_server.url}/api/health", timeout=20) as response:
        assert json.loads(response.read()) == {"status": "ok"}
    # An operator gets the details.
    request = urllib.request.Request(
        f"{daphne_server.url}/api/health", headers={"Authorization": f"Bearer {_token(operator)}"}
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        body = json.loads(response.read())
    assert body["status"] == "ok"
    assert body["database"] == "ok" and body["redis"] == "ok"
    assert body["workers"]["lipsync"]["count"] >= 1
    assert body["workers"]["tts"]["count"] >= 1
