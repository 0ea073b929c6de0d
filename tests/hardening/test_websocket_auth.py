"""Open WebSockets end when their token expires or their account is disabled."""

import json
import time
from datetime import timedelta

import pytest
from rest_framework_simplejwt.tokens import AccessToken
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = [pytest.mark.integration]


@pytest.fixture
def quick_recheck_server(process_env, tmp_path):
    from tests.conftest import DaphneServer

    server = DaphneServer({**process_env, "WEBSOCKET_AUTH_RECHECK_SECONDS": "1"}, tmp_path / "web.log")
    yield server
    server.stop()


def _events(server, avatar, token):
    return connect(f"{server.ws_url}/ws/avatars/{avatar.pk}/events/", subprotocols=[f"bearer.{token}"],
                   open_timeout=10)  # fmt: skip


def _closed_with(ws, timeout: float = 10) -> tuple[int, list]:
    messages = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            messages.append(json.loads(ws.recv(timeout=timeout)))
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else 0, messages
    raise AssertionError(f"still open after {timeout} s: {messages}")


def test_a_socket_ends_when_its_token_expires(transactional_db, quick_recheck_server, admin_user, tutor):
    from avatars.models import Avatar

    avatar = Avatar.objects.create(tutor=tutor, name="expiring", status="inactive")
    token = AccessToken.for_user(admin_user)
    token.set_exp(lifetime=timedelta(seconds=3))
    with _events(quick_recheck_server, avatar, str(token)) as ws:
        started = time.monotonic()
        code, messages = _closed_with(ws)
    assert code == 4401
    assert 2 <= time.monotonic() - started < 8
    assert messages[-1]["event"] == "error" and "expired" in messages[-1]["detail"]


def test_a_socket_ends_when_the_account_is_disabled(transactional_db, quick_recheck_server, admin_user, tutor):
    from avatars.models import Avatar

    avatar = Avatar.objects.create(tutor=tutor, name="disabled", status="inactive")
    with _events(quick_recheck_server, avatar, str(AccessToken.for_user(admin_user))) as ws:
        assert json.loads(ws.recv(timeout=10))["event"] == "avatar.state"
        admin_user.is_active = False
        admin_user.save()
        code, messages = _closed_with(ws)
    assert code == 4401 and "disabled" in messages[-1]["detail"]
