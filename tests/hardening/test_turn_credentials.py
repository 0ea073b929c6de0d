"""TURN: every viewer gets its own short-lived credentials made from the shared secret;
the secret itself and long-lived passwords never reach a browser."""

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from avatars.models import Avatar

BASE_DIR = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db

SECRET = "turn-shared-secret-for-tests"


@pytest.fixture
def turn(settings):
    settings.TURN_URLS = ["turn:127.0.0.1:3478?transport=udp"]
    settings.TURN_SECRET = SECRET
    settings.TURN_TTL = 600
    settings.WEBRTC_ICE_SERVERS = [{"urls": ["stun:127.0.0.1:3478"]}]


def _turn_entry(servers):
    (entry,) = [s for s in servers if "username" in s]
    return entry


def test_each_viewer_gets_its_own_short_lived_credentials(turn, api, other_api, tutor, admin_user, other_admin):
    avatar = Avatar.objects.create(tutor=tutor, name="turned", status="inactive")
    body = api.get(f"/api/avatars/{avatar.pk}/ice-servers").json()
    assert body["ttl"] == 600
    assert {"urls": ["stun:127.0.0.1:3478"]} in body["ice_servers"]
    entry = _turn_entry(body["ice_servers"])
    expires, identity = entry["username"].split(":")
    assert identity == f"user-{admin_user.pk}"
    assert 590 <= int(expires) - time.time() <= 601
    expected = base64.b64encode(hmac.new(SECRET.encode(), entry["username"].encode(), hashlib.sha1).digest())
    assert entry["credential"] == expected.decode()
    assert SECRET not in json.dumps(body)
    # Another admin's avatar: 404, as everywhere.
    assert other_api.get(f"/api/avatars/{avatar.pk}/ice-servers").status_code == 404


def test_the_talk_page_carries_the_viewers_credentials(turn, client, admin_user, tutor):
    avatar = Avatar.objects.create(tutor=tutor, name="talking", status="inactive")
    client.force_login(admin_user)
    page = client.get(f"/avatars/{avatar.pk}/talk/").content.decode()
    assert SECRET not in page
    assert re.search(r'"username": "\d+:user-' + str(admin_user.pk) + '"', page)


def _expiry(entry) -> int:
    return int(entry["username"].split(":", 1)[0])


def test_the_answer_says_when_the_credentials_expire(turn, api, tutor):
    avatar = Avatar.objects.create(tutor=tutor, name="expiring", status="inactive")
    body = api.get(f"/api/avatars/{avatar.pk}/ice-servers").json()
    expires_at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert expires_at.tzinfo is not None
    assert expires_at.timestamp() == _expiry(_turn_entry(body["ice_servers"]))
    assert body["ice_transport_policy"] == "all"


def test_without_turn_only_the_configured_servers_and_no_expiry(settings, api, tutor):
    settings.TURN_URLS, settings.TURN_SECRET = [], ""
    settings.WEBRTC_ICE_SERVERS = [{"urls": ["stun:127.0.0.1:3478"]}]
    avatar = Avatar.objects.create(tutor=tutor, name="plain", status="inactive")
    body = api.get(f"/api/avatars/{avatar.pk}/ice-servers").json()
    assert body["ice_servers"] == [{"urls": ["stun:127.0.0.1:3478"]}]
    assert body["expires_at"] is None and body["ttl"] is None


def test_a_students_token_gets_credentials_named_after_the_token(turn, api, admin_user, tutor):
    """A token asks the LiveTalking proxy (the only API it opens), as the talk page does."""
    from avatars.token_services import session_token_create

    avatar = Avatar.objects.create(tutor=tutor, name="lesson", status="inactive")
    other = Avatar.objects.create(tutor=tutor, name="other-lesson", status="inactive")
    token, raw = session_token_create(avatar, by=admin_user)
    student = APIClient()
    student.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    body = student.get(f"/api/avatars/webrtc/ice_servers?avatar_id={avatar.pk}").json()
    entry = _turn_entry(body["ice_servers"])
    assert entry["username"].endswith(f":token-{token.pk}")
    assert body["expires_at"] and f"user-{admin_user.pk}" not in json.dumps(body)  # not its creator's identity
    # The talk page's way: the token as a query parameter, the address in the page's config.
    page = APIClient().get(f"/talk/{raw}/").content.decode()
    config = json.loads(re.search(r'<script id="talk-config" type="application/json">(.*?)</script>', page).group(1))
    by_query = APIClient().get(config["iceServersUrl"])
    assert by_query.status_code == 200, by_query.content
    assert _turn_entry(by_query.json()["ice_servers"])["username"].endswith(f":token-{token.pk}")
    # Its own avatar only; the rest of the API stays closed to it; a wrong token gets a reason.
    assert student.get(f"/api/avatars/webrtc/ice_servers?avatar_id={other.pk}").status_code == 404
    assert student.get(f"/api/avatars/{avatar.pk}/ice-servers").status_code == 401
    missing = student.get("/api/avatars/webrtc/ice_servers")
    assert missing.status_code == 400 and "avatar_id" in json.dumps(missing.json())
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Token vts_not-a-real-token")
    response = stranger.get(f"/api/avatars/webrtc/ice_servers?avatar_id={avatar.pk}")
    assert response.status_code == 401 and response.json()["detail"]
    # An account asks the same way too, for an avatar it may use.
    assert api.get(f"/api/avatars/webrtc/ice_servers?avatar_id={avatar.pk}").status_code == 200


def test_relay_only_reaches_the_talk_page(turn, settings, client, admin_user, tutor):
    settings.WEBRTC_ICE_TRANSPORT_POLICY = "relay"
    avatar = Avatar.objects.create(tutor=tutor, name="relayed", status="inactive")
    client.force_login(admin_user)
    page = client.get(f"/avatars/{avatar.pk}/talk/").content.decode()
    assert '"iceTransportPolicy": "relay"' in page
    viewer = APIClient()
    viewer.force_authenticate(admin_user)
    assert viewer.get(f"/api/avatars/{avatar.pk}/ice-servers").json()["ice_transport_policy"] == "relay"


def _check(tmp_path, **variables) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(DATA_DIR=str(tmp_path / "data"), **variables)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"WEBRTC_ICE_TRANSPORT_POLICY": "turn-only"}, "WEBRTC_ICE_TRANSPORT_POLICY must be one of all, relay"),
        ({"WEBRTC_ICE_TRANSPORT_POLICY": "relay"}, "WEBRTC_ICE_TRANSPORT_POLICY must be 'all' unless TURN_URLS"),
        ({"TURN_TTL": "0"}, "TURN_TTL must be a positive number of seconds"),
        (
            {"WEBRTC_ICE_SERVERS": '[{"urls": "turn:t.example.org", "username": "u", "credential": "p"}]'},
            "WEBRTC_ICE_SERVERS must be servers without credentials",
        ),
        ({"TURN_URLS": "stun:127.0.0.1:3478"}, "TURN_URLS must be a comma-separated list of turn: or turns: URLs"),
    ],
)
def test_bad_turn_settings_stop_with_one_line(tmp_path, variables, expected):
    result = _check(tmp_path, **variables)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stderr
