"""NAT traversal through coturn: with WEBRTC_ICE_TRANSPORT_POLICY=relay, the worker's peer
and the viewer (aiortc, or Debian's chromium as the talk page sets it up) use TURN relay
candidates only, and the avatar's video still arrives. The peers and coturn run in a
private network namespace (tests/live/turn_relay_peers.py under `unshare -n`): it has
nothing but its own loopback, so no other path can be taken by mistake. This process
stays outside, where the database and Redis are."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from functools import cache
from pathlib import Path

import pytest

from tests.browser import browser_skip_reason

HELPER = Path(__file__).with_name("turn_relay_peers.py")
# The worker sends one colour (BGR, turn_relay_peers.COLOUR_BGR); VP8 keeps it within a few levels.
COLOUR_BGR = (40, 160, 220)


@cache
def _skip_reason() -> str | None:
    if shutil.which("turnserver") is None:
        return "Debian's coturn is not installed: `apt-get install coturn` (`make setup` does so as root)"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare (util-linux) and ip (iproute2) are needed to make a private network namespace"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot make a network namespace here (`unshare -n` needs root): {probe.stderr.strip()}"
    return None


needs_coturn_and_netns = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def _run_peers(tmp_path, viewer: str, *extra: str) -> tuple[dict, str]:
    """(what the peers saw, coturn's log)."""
    workdir = tmp_path / "netns"
    workdir.mkdir()
    command = [sys.executable, str(HELPER), "--workdir", str(workdir), "--viewer", viewer, *extra]
    done = subprocess.run(
        ["unshare", "-n", *command],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"},
    )
    log = (workdir / "turnserver.log").read_text() if (workdir / "turnserver.log").exists() else ""
    assert done.returncode == 0, f"the peers failed:\n{done.stderr[-4000:]}\ncoturn:\n{log[-2000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1]), log


def _allocations(log: str) -> set[str]:
    """The identities (username after the expiry) coturn made allocations for."""
    return set(re.findall(r"user <\d+:([^>]+)>: incoming packet ALLOCATE processed, success", log))


@needs_coturn_and_netns
@pytest.mark.parametrize(
    "viewer",
    [
        "aiortc",
        pytest.param(
            "chromium",
            marks=[
                pytest.mark.browser,
                pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or ""),
            ],
        ),
    ],
)
def test_relay_only_media_flows_through_coturn(tmp_path, viewer):
    result, log = _run_peers(tmp_path, viewer)

    # Both peers were told "relay" and offered nothing but relay candidates ...
    assert result["grant_policy"] == "relay"
    assert result["offer_candidates"] == ["relay"], result
    assert result["answer_candidates"] == ["relay"], result
    # ... and the pair each side selected is relay to relay.
    assert result["worker_pair"] == ["relay", "relay"], result
    assert result["viewer_pair"] == ["relay", "relay"], result
    assert "connected" in result["viewer_states"] and "connected" in result["worker_states"], result
    # The avatar's video arrived: most of 6 s at 25 fps, in the colour the worker sent.
    assert result["frames"] >= 75, result
    assert all(abs(got - sent) <= 12 for got, sent in zip(result["colour_bgr"], COLOUR_BGR, strict=True)), result
    # coturn relayed for the viewer, named as the web app names it, and for the worker.
    allocated = _allocations(log)
    assert "token-4242" in allocated, log[-2000:]
    assert any(identity.startswith("worker-") for identity in allocated), log[-2000:]
    assert re.match(r"\d+:token-4242$", result["grant_username"])


@needs_coturn_and_netns
def test_credentials_from_another_secret_get_no_relay(tmp_path):
    result, log = _run_peers(tmp_path, "aiortc", "--viewer-secret", "not-the-turn-secret", "--seconds", "4")

    # coturn refused the viewer's allocation: it has no candidate at all, so nothing connects.
    assert "token-4242" not in _allocations(log)
    assert re.search(r"user <\d+:token-4242>: incoming packet \S+ processed, error 401", log), log[-2000:]
    assert result["offer_candidates"] == [], result
    assert "connected" not in result["viewer_states"] and "connected" not in result["worker_states"], result
    assert result["frames"] == 0, result


# --- the session's answer hands the viewer its servers (no coturn needed) --------------------

TURN_SECRET = "answer-test-turn-secret"


def _check_turn_entry(body: dict, identity: str) -> None:
    (entry,) = [server for server in body["ice_servers"] if "username" in server]
    expiry, named = entry["username"].split(":", 1)
    assert named == identity, entry
    digest = hmac.new(TURN_SECRET.encode(), entry["username"].encode(), hashlib.sha1).digest()
    assert entry["credential"] == base64.b64encode(digest).decode()
    assert 880 <= int(expiry) - time.time() <= 901
    assert datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")).timestamp() == int(expiry)
    assert TURN_SECRET not in json.dumps(body)


def _proxy_offer(server, bearer: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{server.url}/api/avatars/webrtc/offer",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": bearer, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.integration
def test_session_answers_carry_the_viewers_own_turn_credentials(
    started_avatar, process_env, tmp_path_factory, admin_user, token, api
):
    """The socket's `answer` and the HTTP proxy's: ice_servers with credentials named after
    the viewer (the account, or the student's token) and when they expire, for an ICE
    restart or the next session."""
    from avatars.models import SessionToken
    from tests.conftest import DaphneServer
    from tests.live.client import LiveClient, Recorder, new_peer

    env = {**process_env, "TURN_URLS": "turn:127.0.0.1:3478?transport=udp", "TURN_SECRET": TURN_SECRET}
    server = DaphneServer({**env, "TURN_TTL": "900"}, tmp_path_factory.mktemp("daphne-turn") / "daphne.log")
    raw = api.post(f"/api/avatars/{started_avatar.pk}/session-tokens", {"label": "4B"}, format="json").json()["token"]
    student_token = SessionToken.objects.get(prefix=raw[:12])
    answers = {}

    async def scenario():
        for who, secret, protocol in (("admin", token, "bearer"), ("student", raw, "token")):
            client = LiveClient(server.ws_url, started_avatar.pk, secret, keep_frames=False, protocol=protocol)
            answers[who] = await client.connect()
            await client.close()
        pc = new_peer(Recorder(keep_frames=False))
        await pc.setLocalDescription(await pc.createOffer())
        offer = {"sdp": pc.localDescription.sdp, "type": "offer", "avatar_id": started_avatar.pk}
        loop = asyncio.get_running_loop()
        answers["proxy"] = await loop.run_in_executor(None, _proxy_offer, server, f"Bearer {token}", offer)
        await pc.close()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()
    assert answers["admin"]["type"] == "answer", answers
    _check_turn_entry(answers["admin"], f"user-{admin_user.pk}")
    assert answers["student"]["type"] == "answer", answers
    _check_turn_entry(answers["student"], f"token-{student_token.pk}")
    assert answers["proxy"]["type"] == "answer" and answers["proxy"]["sessionid"], answers
    _check_turn_entry(answers["proxy"], f"user-{admin_user.pk}")


@pytest.mark.integration
@pytest.mark.browser
def test_the_talk_page_makes_its_peer_relay_only_with_fresh_credentials(
    started_avatar, process_env, tmp_path_factory, api, monkeypatch
):
    """WEBRTC_ICE_TRANSPORT_POLICY=relay reaches the browser's RTCPeerConnection (with the
    student's TURN credentials), and credentials about to expire are renewed before the
    offer (TURN_TTL 30 s here: less than the minute of margin the page keeps)."""
    from playwright.sync_api import sync_playwright

    from avatars.models import SessionToken
    from tests.browser import CHROMIUM, CHROMIUM_ARGS
    from tests.conftest import DaphneServer

    env = {
        **process_env,
        "TURN_URLS": "turn:127.0.0.1:3478?transport=udp",
        "TURN_SECRET": TURN_SECRET,
        "TURN_TTL": "30",
        "WEBRTC_ICE_TRANSPORT_POLICY": "relay",
    }
    server = DaphneServer(env, tmp_path_factory.mktemp("daphne-relay") / "daphne.log")
    raw = api.post(f"/api/avatars/{started_avatar.pk}/session-tokens", {}, format="json").json()["token"]
    token_id = SessionToken.objects.get(prefix=raw[:12]).pk
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    requests: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(base_url=server.url).new_page()
                page.on("request", lambda request: requests.append(request.url))
                # Record what the page gives RTCPeerConnection (the page keeps its peer private).
                page.add_init_script("""(() => {
                    const Native = window.RTCPeerConnection; window.peerConfigs = [];
                    window.RTCPeerConnection = function (config) {
                        window.peerConfigs.push(JSON.parse(JSON.stringify(config))); return new Native(config); };
                    window.RTCPeerConnection.prototype = Native.prototype; })()""")
                page.goto(f"/talk/{raw}/")
                rendered = page.evaluate("JSON.parse(document.getElementById('talk-config').textContent)")
                page.wait_for_function("window.peerConfigs.length > 0", timeout=30_000)
                config = page.evaluate("window.peerConfigs[0]")
            finally:
                browser.close()
    finally:
        server.stop()
    assert rendered["iceTransportPolicy"] == "relay"
    assert config["iceTransportPolicy"] == "relay", config
    (turn,) = [entry for entry in config["iceServers"] if "username" in entry]
    assert turn["urls"] == ["turn:127.0.0.1:3478?transport=udp"]
    assert turn["username"].endswith(f":token-{token_id}")
    # Renewed before the offer: the page asked for fresh ones, and used them.
    assert any("/api/avatars/webrtc/ice_servers?" in url for url in requests), requests
    (first,) = [entry for entry in rendered["iceServers"] if "username" in entry]
    assert int(turn["username"].split(":")[0]) >= int(first["username"].split(":")[0])
