"""TURN: every viewer gets its own short-lived credentials made from the shared secret;
the secret itself and long-lived passwords never reach a browser."""

import base64
import hashlib
import hmac
import json
import re
import time

import pytest

from avatars.models import Avatar

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
