"""Classroom mode: a host's live session broadcast to aiortc viewers through the real web
server and worker (H.264 + Opus encoded once, packets to every viewer)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from tests.live.broadcast_client import BroadcastViewer
from tests.live.client import LiveClient, loud

pytestmark = [pytest.mark.integration]

SPEECH = "Good morning class. Today we learn about rivers and mountains."


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def _closed_with(viewer: BroadcastViewer) -> int | None:
    """The close code of a viewer's socket once the server closed it."""
    await asyncio.wait_for(viewer.ws.wait_closed(), 15)
    return viewer.ws.close_code


def test_classroom_broadcast(started_avatar, daphne_server, token):
    result: dict = {}

    async def scenario():
        host = LiveClient(daphne_server.ws_url, started_avatar.pk, token, keep_frames=False)
        assert (await host.connect())["type"] == "answer"
        await host.wait_event(lambda e: e.get("state") == "connected", 30)

        await host.send({"type": "broadcast"})
        opened = await host.wait_event(lambda e: e["type"] in ("broadcast", "error"), 20)
        assert opened["type"] == "broadcast", opened
        broadcast_id, viewer_token = opened["broadcast_id"], opened["viewer_token"]
        assert viewer_token.startswith("vtb_")
        assert opened["join_url"] == f"{daphne_server.url}/watch/{broadcast_id}/?token={viewer_token}"
        # Asking again: the same broadcast (with another token for it).
        await host.send({"type": "broadcast"})
        again = await host.wait_event(lambda e: e["type"] == "broadcast", 20)
        assert again["broadcast_id"] == broadcast_id

        loop = asyncio.get_running_loop()
        # The watch page: with the token, a page that joins this broadcast; a wrong token: 404 saying why.
        status, page = await loop.run_in_executor(None, _get, opened["join_url"])
        assert status == 200 and f"/ws/broadcasts/{broadcast_id}/" in page
        status, page = await loop.run_in_executor(
            None, _get, f"{daphne_server.url}/watch/{broadcast_id}/?token=vtb_wrong"
        )
        assert status == 404 and "not valid" in page

        # A wrong token, another broadcast's id, no token: refused with the reason.
        for bid, tok, code, words in (
            (broadcast_id, "vtb_nope", 4401, "not valid"),
            ("0" * 32, viewer_token, 4404, "No such broadcast"),
            (broadcast_id, "", 4401, "token is required"),
        ):
            stranger = BroadcastViewer(daphne_server.ws_url, bid, tok)
            first = await stranger.connect()
            assert first["type"] == "error" and words in first["detail"], first
            assert await _closed_with(stranger) == code

        viewers = [BroadcastViewer(daphne_server.ws_url, broadcast_id, viewer_token) for _ in range(3)]
        answers = await asyncio.gather(*(v.connect() for v in viewers))
        assert [a["type"] for a in answers] == ["answer"] * 3, answers
        await asyncio.gather(*(v.wait_event(lambda e: e.get("state") == "connected", 30) for v in viewers))
        # The viewer count, to the host and to the viewers.
        await host.wait_event(lambda e: e["type"] == "viewers" and e["count"] == 3, 15)
        await viewers[0].wait_event(lambda e: e["type"] == "viewers" and e["count"] == 3, 15)

        # A viewer may not speak for the avatar.
        for kind in ("say", "ask", "interrupt"):
            await viewers[1].send({"type": kind, "text": "I am the teacher now."})
            refused = await viewers[1].wait_event(lambda e: e["type"] == "error", 10)
            assert "Only the host" in refused["detail"], refused

        # The host speaks: every viewer sees it start, its words, its end, frames and sound.
        await asyncio.sleep(1.0)
        marks = [(len(v.recorder.video), len(v.recorder.audio)) for v in viewers]
        said = await host.send({"type": "say", "text": SPEECH})
        for viewer in viewers:
            started = await viewer.wait_event(lambda e: e["type"] == "speaking_started", 20)
            assert started["text"] == SPEECH
            await viewer.wait_event(lambda e: e["type"] == "speaking_ended", 30)
        await asyncio.sleep(0.5)
        result["words"] = [[e["text"] for _t, e in v.events if e["type"] == "word"] for v in viewers]
        result["frames"] = [len(v.recorder.video) - m[0] for v, m in zip(viewers, marks, strict=True)]
        result["loud"] = [
            sum(1 for t, _p, r in v.recorder.audio[m[1] :] if t > said and loud(r))
            for v, m in zip(viewers, marks, strict=True)
        ]
        result["shapes"] = {v.recorder.frames[-1].shape for v in viewers}
        # Frames that change while it speaks (the mouth moves), the same picture for everyone.
        result["motion"] = [
            float(np.std(np.stack(v.recorder.frames[m[0] :]).astype(np.float32), axis=0).max())
            for v, m in zip(viewers, marks, strict=True)
        ]
        result["elapsed"] = viewers[0].events[-1][0] - said

        # One viewer leaves: the count goes down.
        await viewers[2].close()
        await host.wait_event(lambda e: e["type"] == "viewers" and e["count"] == 2, 15)

        # The host ends its session: the viewers are told, their sockets close, the link dies.
        await host.close()
        for viewer in viewers[:2]:
            ended = await viewer.wait_event(lambda e: e["type"] == "ended", 15)
            assert "host" in ended["reason"]
            assert await _closed_with(viewer) == 1000
        late = BroadcastViewer(daphne_server.ws_url, broadcast_id, viewer_token)
        first = await late.connect()
        assert first["type"] == "error" and "ended" in first["detail"], first
        for viewer in viewers:
            await viewer.close(bye=False)

    asyncio.run(scenario())
    expected = SPEECH.replace(".", "").split()
    for words in result["words"]:
        assert [w.strip(".,").lower() for w in words] == [w.lower() for w in expected], words
    # Frames kept coming while it spoke (the rate is bench_broadcast's business: the machine is shared).
    assert all(n >= 2 * result["elapsed"] for n in result["frames"]), (result["frames"], result["elapsed"])
    assert all(n >= 10 for n in result["loud"]), result["loud"]
    assert len(result["shapes"]) == 1
    assert all(m > 10 for m in result["motion"]), result["motion"]


def test_host_only_and_bad_messages(started_avatar, daphne_server, token):
    """Broadcast before a session; a viewer's bad messages; a viewer offer without H.264."""

    async def scenario():
        host = LiveClient(daphne_server.ws_url, started_avatar.pk, token, keep_frames=False)
        from websockets.asyncio.client import connect

        async with connect(
            f"{daphne_server.ws_url}/ws/avatars/{started_avatar.pk}/session/", subprotocols=[f"bearer.{token}"]
        ) as ws:
            assert json.loads(await ws.recv())["state"] == "ready"
            await ws.send(json.dumps({"type": "broadcast"}))
            event = json.loads(await ws.recv())
            assert event["type"] == "error" and "offer first" in event["detail"]

        assert (await host.connect())["type"] == "answer"
        await host.send({"type": "broadcast"})
        opened = await host.wait_event(lambda e: e["type"] == "broadcast", 20)
        viewer = BroadcastViewer(daphne_server.ws_url, opened["broadcast_id"], opened["viewer_token"])
        viewer.ws = await connect(viewer.url)
        assert json.loads(await viewer.ws.recv())["state"] == "ready"
        for raw, words in (
            ("not json", "JSON objects"),
            (json.dumps({"type": "dance"}), "a viewer sends offer or bye"),
            (json.dumps({"type": "offer", "sdp": 3}), "sdp must be an SDP offer"),
        ):
            await viewer.ws.send(raw)
            event = json.loads(await viewer.ws.recv())
            assert event["type"] == "error" and words in event["detail"], (raw, event)
        # An offer whose video is VP8 only (what a client without H.264 sends).
        from aiortc import RTCPeerConnection, RTCRtpSender

        pc = RTCPeerConnection()
        transceiver = pc.addTransceiver("video", direction="recvonly")
        transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
        )
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        await viewer.ws.send(json.dumps({"type": "offer", "sdp": pc.localDescription.sdp}))
        event = json.loads(await viewer.ws.recv())
        assert event["type"] == "error" and "H.264" in event["detail"], event
        await pc.close()
        await viewer.ws.close()
        await host.close()

    asyncio.run(scenario())


@pytest.mark.browser
def test_watch_page_in_chromium(started_avatar, daphne_server, token, browser_page, artifacts):
    """A class member opens the join link in Chromium: the avatar plays (H.264), the viewer
    count shows, the host's words appear as subtitles, and the end of the host's session shows."""
    import threading

    from tests.browser import shot

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    host = LiveClient(daphne_server.ws_url, started_avatar.pk, token, keep_frames=False)
    try:
        assert run(host.connect())["type"] == "answer"
        run(host.wait_event(lambda e: e.get("state") == "connected", 30))
        run(host.send({"type": "broadcast"}))
        opened = run(host.wait_event(lambda e: e["type"] == "broadcast", 20))
        page = browser_page
        page.goto(opened["join_url"].removeprefix(daphne_server.url))
        page.wait_for_function("document.getElementById('watch-state').dataset.state === 'connected'")
        page.wait_for_function("document.getElementById('watch-video').videoWidth > 0")
        assert page.evaluate("document.getElementById('watch-video').videoWidth") == started_avatar.width
        page.wait_for_function("document.getElementById('watch-viewers').textContent === '1'")
        run(host.wait_event(lambda e: e["type"] == "viewers" and e["count"] == 1, 15))
        run(host.send({"type": "say", "text": "Welcome, class. Today we study fractions."}))
        page.wait_for_function(
            "document.getElementById('watch-subtitles').textContent.includes('fractions')", timeout=30_000
        )
        shot(page, artifacts, "watch-speaking")
        # Frames keep coming while it speaks (the video's clock advances).
        before = page.evaluate("document.getElementById('watch-video').getVideoPlaybackQuality().totalVideoFrames")
        page.wait_for_timeout(1000)
        after = page.evaluate("document.getElementById('watch-video').getVideoPlaybackQuality().totalVideoFrames")
        assert after - before >= 10, (before, after)
        run(host.close())
        page.wait_for_function("document.getElementById('watch-state').dataset.state === 'ended'")
        assert "ended" in page.text_content("#watch-error")
    finally:
        run(host.close(bye=False))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


class _HostSessionStandIn:
    """Stands in for the host's LiveSession (this test drives the broadcast without a worker):
    records what the broadcast tells its host."""

    def __init__(self):
        self.id = "h" * 32
        self.listeners: list = []
        self.closed = False
        self.events: list[dict] = []

    async def emit(self, event: dict) -> None:
        self.events.append(event)


class _RuntimeStandIn:
    """Stands in for the worker's LiveRuntime: keeps the broadcasts, records the viewers' events."""

    def __init__(self):
        self.broadcasts: dict = {}
        self.sent: list = []
        self.layer = self

    async def group_send(self, group: str, message: dict) -> None:
        self.sent.append((group, message["event"]))

    async def send(self, channel: str, message: dict) -> None:
        self.sent.append((channel, message["event"]))


def test_a_full_broadcast_refuses_the_next_viewer(settings):
    """LIVE_BROADCAST_MAX_VIEWERS: one viewer more is refused with the reason; a place freed is taken."""
    from aiortc import RTCPeerConnection

    from contracts.errors import TooManyRequests
    from lipsync_worker.live.broadcast import broadcast_join, broadcast_leave, broadcast_open

    settings.LIVE_BROADCAST_MAX_VIEWERS = 2
    settings.LIVE_CONNECT_TIMEOUT = 60

    async def offer() -> tuple:
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return pc, pc.localDescription.sdp

    async def scenario():
        runtime, host = _RuntimeStandIn(), _HostSessionStandIn()
        runtime.sessions = {host.id: host}
        opened = await broadcast_open(runtime, {"session_id": host.id})
        assert opened["max_viewers"] == 2
        bid = opened["broadcast_id"]
        peers, joined = [], []
        for _ in range(2):
            pc, sdp = await offer()
            peers.append(pc)
            joined.append(await broadcast_join(runtime, {"broadcast_id": bid, "sdp": sdp, "events_to": "x"}))
        assert [j["viewers"] for j in joined] == [1, 2]
        assert "H264/90000" in joined[0]["sdp"] and "VP8" not in joined[0]["sdp"]
        pc, sdp = await offer()
        peers.append(pc)
        with pytest.raises(TooManyRequests) as refused:
            await broadcast_join(runtime, {"broadcast_id": bid, "sdp": sdp, "events_to": "x"})
        assert "full" in refused.value.detail and "LIVE_BROADCAST_MAX_VIEWERS = 2" in refused.value.detail
        await broadcast_leave(runtime, {"broadcast_id": bid, "viewer_id": joined[0]["viewer_id"]})
        again = await broadcast_join(runtime, {"broadcast_id": bid, "sdp": sdp, "events_to": "x"})
        assert again["viewers"] == 2
        await asyncio.sleep(0.1)
        assert [e["count"] for e in host.events if e["type"] == "viewers"] == [1, 2, 1, 2]
        # The host's session closing ends the broadcast: its viewers are told, nobody joins any more.
        broadcast = runtime.broadcasts[bid]
        broadcast.event({"type": "state", "state": "closed"})
        await asyncio.sleep(0.2)
        assert broadcast.ended and bid not in runtime.broadcasts and host.listeners == []
        assert any(event["type"] == "ended" for _group, event in runtime.sent)
        for pc in peers:
            await pc.close()

    asyncio.run(scenario())
