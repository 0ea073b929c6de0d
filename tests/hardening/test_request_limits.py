"""Bodies are limited while they arrive, before any authentication: a request that claims or
sends more than its route accepts gets a 413 at once and the server's memory stays flat."""

import socket
import time

import pytest

pytestmark = [pytest.mark.integration]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _send(port: int, head: bytes, body_chunks=(), pause: float = 0.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
                if pause:
                    time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection after answering
        answer = b""
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
        return answer


def test_a_claimed_8_gb_body_is_refused_at_once(transactional_db, daphne_server):
    port = daphne_server.port
    head = (b"POST /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: 8589934592\r\n\r\n")  # fmt: skip
    started = time.monotonic()
    answer = _send(port, head, [b"\0" * 65536])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than this endpoint accepts" in answer
    assert time.monotonic() - started < 5


def test_a_streamed_body_past_the_limit_is_cut_off_and_memory_stays_flat(transactional_db, daphne_server):
    port, pid = daphne_server.port, daphne_server.proc.pid
    before = _rss_mb(pid)
    head = (b"POST /api/avatars/create HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n\r\n")  # fmt: skip
    chunk = b"%x\r\n" % (1024 * 1024) + b"\0" * (1024 * 1024) + b"\r\n"
    # Up to 600 MB offered (the upload limit is about 261 MB): refused at the limit.
    answer = _send(port, head, (chunk for _ in range(600)))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert _rss_mb(pid) - before < 60, (before, _rss_mb(pid))
    # And the server goes on serving.
    assert _send(port, b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 200"
    )


def test_a_json_route_takes_only_small_bodies(transactional_db, daphne_server):
    body = b"{" + b" " * (3 * 1024 * 1024) + b"}"
    head = (b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))  # fmt: skip
    assert _send(daphne_server.port, head, [body]).startswith(b"HTTP/1.1 413")


@pytest.fixture
def quick_timeout_server(process_env, tmp_path):
    """A web server whose idle timeout is 2 s (the default is HTTP_IDLE_TIMEOUT, 30 s)."""
    from tests.conftest import DaphneServer

    server = DaphneServer({**process_env, "HTTP_IDLE_TIMEOUT": "2"}, tmp_path / "web.log")
    yield server
    server.stop()


def test_a_slow_client_is_disconnected_but_websockets_stay_open(
    transactional_db, quick_timeout_server, admin_user, tutor
):
    import json

    from rest_framework_simplejwt.tokens import RefreshToken
    from websockets.sync.client import connect

    from avatars.events import avatar_event_publish
    from avatars.models import Avatar

    # Slow loris: half a request line, then nothing.
    with socket.create_connection(("127.0.0.1", quick_timeout_server.port), timeout=20) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server
        assert time.monotonic() - started < 10
    # A WebSocket idle for longer than the HTTP idle timeout still gets its events.
    avatar = Avatar.objects.create(tutor=tutor, name="idle_ws", status="inactive")
    token = RefreshToken.for_user(admin_user).access_token
    url = f"{quick_timeout_server.ws_url}/ws/avatars/{avatar.pk}/events/"
    with connect(url, subprotocols=[f"bearer.{token}"], open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["event"] == "avatar.state"
        time.sleep(4)
        avatar_event_publish(avatar, "avatar.state")
        assert json.loads(ws.recv(timeout=10))["avatar"]["id"] == avatar.pk
