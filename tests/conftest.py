"""Shared fixtures: accounts, API clients, test media, and real worker/server processes.

Integration fixtures start real processes (a Celery worker, daphne) against the test
database and Redis that pytest-django and the launcher set up, so they see the rows the
tests commit (use `transactional_db` in those tests).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from tests import media
from tutor_site.launcher import worker_command

BASE_DIR = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-9"
pytest_plugins = ["tests.browser"]


# --- settings shared with the processes the tests start -----------------------------------


@pytest.fixture(scope="session", autouse=True)
def media_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    with override_settings(MEDIA_ROOT=str(root)):
        yield root


@pytest.fixture(scope="session", autouse=True)
def clean_redis():
    """Drop what an earlier run left under the test key prefix (queues, channel groups)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"{settings.REDIS_KEY_PREFIX}:*", count=1000):
        client.delete(key)
    yield


@pytest.fixture(autouse=True)
def _counters_forgotten():
    """Each test starts with no failed sign-ins counted (lockouts are per email and address),
    no speech characters counted and no avatar use recorded (quotas)."""
    yield
    client = redis.Redis.from_url(settings.REDIS_URL)
    for pattern in (f"*{settings.REDIS_KEY_PREFIX}*signin-failures*", f"{settings.REDIS_KEY_PREFIX}:quota:*"):
        for key in client.scan_iter(pattern, count=1000):
            client.delete(key)


@pytest.fixture
def published_catalogues():
    """Publish the engine catalogues from this process, as the lipsync, live and tts workers
    do when they start (the web reads them); call the fixture's value again after changing
    settings. Withdrawn afterwards, so tests with real workers see only theirs."""
    from contracts.catalogue import catalogue_forget, catalogue_publish
    from lipsync_worker.conversation.asr import asr_engine_list
    from lipsync_worker.conversation.responders import responder_list
    from lipsync_worker.engines import engine_list
    from tts_worker.selectors import tts_model_list

    describe = {"lipsync": engine_list, "tts": tts_model_list, "asr": asr_engine_list, "llm": responder_list}

    def publish():
        for kind, rows in describe.items():
            catalogue_publish(kind, "test-process", rows())

    publish()
    yield publish
    for kind in describe:
        catalogue_forget(kind, "test-process")


def _database_url() -> str:
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = quote(s["USER"] or "")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"])
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture(scope="session")
def process_env(django_db_setup, django_db_blocker, media_root):
    """Environment for child processes: the test database, test Redis prefix, test media."""
    with django_db_blocker.unblock():
        url = _database_url()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        REDIS_URL=settings.REDIS_URL,
        REDIS_KEY_PREFIX=settings.REDIS_KEY_PREFIX,
        MEDIA_ROOT=str(media_root),
        DATA_DIR=str(settings.DATA_DIR),
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
        # A worker stopped with sessions open drains them this long (tests/live/test_cluster.py sets its own).
        LIVE_DRAIN_GRACE_SECONDS=os.environ.get("LIVE_DRAIN_GRACE_SECONDS", "3"),
    )
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WorkerProcess:
    """A real `celery worker` subprocess serving the lipsync, tts and live queues (threads),
    or the prefork job worker of `make run` with `pool="prefork"`."""

    def __init__(
        self,
        env: dict,
        log_path: Path,
        name: str,
        extra_env: dict | None = None,
        queues: str = "lipsync,tts,live",
        pool: str = "threads",
    ):
        self.log_path = log_path
        self.name = name
        env = dict(env, **(extra_env or {}))
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            worker_command(queues, f"{name}@%h", "2", "--without-gossip", "--without-mingle", pool=pool),
            cwd=BASE_DIR,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Celery worker exited:\n{self.log()}")
            if b" ready." in self.log_path.read_bytes():
                return
            time.sleep(0.2)
        raise RuntimeError(f"Celery worker did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def kill(self) -> None:
        """Like a crash or an OOM kill: no chance to hand work back."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.fixture(scope="session")
def start_worker(process_env, tmp_path_factory):
    """Factory for extra workers (e.g. to kill one); all are stopped at the end."""
    started: list[WorkerProcess] = []
    logs = tmp_path_factory.mktemp("worker-logs")

    def start(name: str = "w", queues: str = "lipsync,tts,live", pool: str = "threads", **extra_env) -> WorkerProcess:
        worker = WorkerProcess(
            process_env,
            logs / f"{name}-{len(started)}.log",
            f"{name}{len(started)}",
            {k: str(v) for k, v in extra_env.items()},
            queues=queues,
            pool=pool,
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def celery_worker_process(start_worker):
    """One real worker for the whole session."""
    return start_worker("main")


class DaphneServer:
    def __init__(self, env: dict, log_path: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self._log = open(log_path, "ab")
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tutor_site.web_server",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "tutor_site.asgi:application",
            ],  # fmt: skip
            # The web process runs with the web settings: no worker app is installed there.
            cwd=BASE_DIR,
            env={**env, "DJANGO_SETTINGS_MODULE": "tutor_site.settings"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(log_path.read_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("daphne did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


@pytest.fixture
def daphne_server(process_env, tmp_path_factory):
    """The real ASGI server (HTTP, admin, WebSockets) on a loopback port. One per test:
    the database is flushed between transactional tests, which gives content types new
    ids that a long-lived server would still have cached."""
    server = DaphneServer(process_env, tmp_path_factory.mktemp("daphne") / "daphne.log")
    yield server
    server.stop()


# --- accounts and clients ----------------------------------------------------------------


def _admin(email: str, superuser: bool = False):
    from tutors.services import admin_create

    user, _ = admin_create(email=email, password=PASSWORD, superuser=superuser)
    return user


@pytest.fixture
def admin_user(db):
    return _admin("ada@school.test")


@pytest.fixture
def other_admin(db):
    return _admin("bob@other-school.test")


@pytest.fixture
def operator(db):
    return _admin("ops@platform.test", superuser=True)


def _client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def api(admin_user):
    return _client_for(admin_user)


@pytest.fixture
def other_api(other_admin):
    return _client_for(other_admin)


@pytest.fixture
def client_for():
    return _client_for


@pytest.fixture
def tutor(admin_user):
    from tutors.services import tutor_create

    return tutor_create(owner=admin_user, name="Ms Ada", description="Maths")


# --- media ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def face_video(tmp_path_factory) -> Path:
    """A 2 s, 25 fps H.264 MP4 of a real face (the astronaut) moving gently."""
    path = tmp_path_factory.mktemp("media-src") / "tutor.mp4"
    return media.write_video(path, media.face_frames(2.0), audio_seconds=2.0)


@pytest.fixture(scope="session")
def noface_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("media-src") / "coffee.mp4"
    return media.write_video(path, media.noise_frames(2.0))


@pytest.fixture(scope="session")
def voice_wav(tmp_path_factory) -> Path:
    return media.write_tone_wav(tmp_path_factory.mktemp("media-src") / "voice.wav", seconds=2.0)


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout:.0f} s waiting for {message}")


def avatar_create_and_wait(api, tutor, video: Path, name: str, timeout: float = 120, **fields) -> dict:
    """Create an avatar through the API and wait for the real worker to finish it."""
    with open(video, "rb") as fh:
        response = api.post(
            "/api/avatars/create", {"tutor_id": tutor.pk, "name": name, "prompt_face": fh, **fields}, format="multipart"
        )
    assert response.status_code == 201, response.content

    def done():
        body = api.get(f"/api/avatars/{response.json()['id']}").json()
        return body if body["status"] != "processing" else None

    return wait_for(done, timeout=timeout, message=f"avatar {name} to be processed")
