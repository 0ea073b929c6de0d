"""Per-admin quotas and throttles (settings, enforced in the services): queued renders,
preprocessing jobs, warmed avatars, concurrent live sessions, session length and TTS
characters per minute. Each refusal is a 429 with Retry-After and a message naming the
setting; counting is race-free (concurrent requests cannot pass a limit)."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from avatars.models import Avatar, AvatarRender, AvatarStatus, RenderStatus
from contracts import live_registry as registry
from contracts.errors import TooManyRequests
from tests.conftest import DaphneServer, wait_for
from tests.live.conftest import live_assets, make_avatar, token  # noqa: F401 - fixtures
from tutors.services import tutor_create

SAY_TEXT = "Good morning, class."


@pytest.fixture
def queued(monkeypatch):
    """Nothing is really enqueued (no worker takes these jobs): the calls are recorded."""
    from avatars import render_services, services, speech_services

    calls = []
    for module in (render_services, services, speech_services):
        monkeypatch.setattr(module, "task_send", lambda *args, **kwargs: calls.append(args))
    return calls


@pytest.fixture
def frozen_minute(monkeypatch):
    """The quota clock stopped 15 s into a minute window (Retry-After is then 45 s);
    `advance(seconds)` moves it."""
    from avatars import quotas

    now = {"t": (int(time.time()) // 60 + 1000) * 60 + 15.0}
    monkeypatch.setattr(quotas, "_clock", lambda: now["t"])

    def advance(seconds: float) -> None:
        now["t"] += seconds

    return advance


def _ready(tutor, name: str) -> Avatar:
    return Avatar.objects.create(
        tutor=tutor, name=name, status=AvatarStatus.INACTIVE, assets_path="avatars/x/assets/y", video_path="v.mp4"
    )


def _is_429(response, *words: str) -> dict:
    assert response.status_code == 429, response.content
    body = response.json()
    assert int(response["Retry-After"]) == body["retry_after"] > 0
    for word in words:
        assert word in body["detail"], body["detail"]
    return body


def _threads(count: int, target) -> list:
    """Run `target(i)` in `count` threads started together; their results (or exceptions)."""
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def run(i):
        try:
            barrier.wait()
            results[i] = target(i)
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


# --- 1. talking clips queued or rendering ----------------------------------------------------


@pytest.mark.django_db
def test_renders_queued_per_admin(api, other_api, tutor, other_admin, published_catalogues, queued, settings):
    settings.RENDER_MAX_QUEUED_PER_ADMIN = 2
    mine, second = _ready(tutor, "clips_a"), _ready(tutor, "clips_b")
    for _ in range(2):
        assert api.post(f"/api/avatars/{mine.pk}/render", {"text": "Hello."}, format="json").status_code == 202
    # Per admin, not per avatar: another avatar of the same admin is refused too.
    for avatar in (mine, second):
        response = api.post(f"/api/avatars/{avatar.pk}/render", {"text": "Hello."}, format="json")
        _is_429(response, "2 talking clips queued or rendering", "RENDER_MAX_QUEUED_PER_ADMIN = 2")
    assert AvatarRender.objects.count() == 2
    # Another admin has a quota of its own.
    theirs = _ready(tutor_create(owner=other_admin, name="Bob's tutor"), "clips_bob")
    assert other_api.post(f"/api/avatars/{theirs.pk}/render", {"text": "Hi."}, format="json").status_code == 202
    # A finished clip frees its place (a failed one too).
    AvatarRender.objects.filter(avatar=mine).update(status=RenderStatus.DONE)
    assert api.post(f"/api/avatars/{second.pk}/render", {"text": "Hello."}, format="json").status_code == 202


@pytest.mark.integration
def test_concurrent_render_requests_cannot_pass_the_quota(
    transactional_db, tutor, published_catalogues, queued, settings
):
    from avatars import render_services

    settings.RENDER_MAX_QUEUED_PER_ADMIN = 3
    avatar = _ready(tutor, "clips_race")
    results = _threads(8, lambda i: render_services.render_create(avatar, text=f"Sentence {i}."))
    refused = [r for r in results if isinstance(r, TooManyRequests)]
    assert len(refused) == 5 and sum(isinstance(r, AvatarRender) for r in results) == 3, results
    assert AvatarRender.objects.filter(avatar=avatar).count() == 3


# --- 2. preprocessing jobs ---------------------------------------------------------------------


def _create(api, tutor, video, name):
    with open(video, "rb") as fh:
        return api.post("/api/avatars/create", {"tutor_id": tutor.pk, "name": name, "prompt_face": fh})


@pytest.mark.django_db
def test_preprocessing_jobs_per_admin_on_every_surface(
    api, other_api, client, admin_user, other_admin, tutor, face_video, published_catalogues, queued, settings, tmp_path
):
    settings.AVATAR_MAX_PROCESSING_PER_ADMIN = 2
    assert _create(api, tutor, face_video, "busy_one").status_code == 201
    assert _create(api, tutor, face_video, "busy_two").status_code == 201
    body = _is_429(
        _create(api, tutor, face_video, "busy_three"),
        "2 avatars being processed",
        "AVATAR_MAX_PROCESSING_PER_ADMIN = 2",
    )
    detail = body["detail"]
    assert not Avatar.objects.filter(name="busy_three").exists()
    # Reprocessing a ready avatar starts a job too: refused with the same reason.
    ready = _ready(tutor, "ready_one")
    assert api.post(f"/api/avatars/{ready.pk}/reprocess").json()["detail"] == detail
    ready.refresh_from_db()
    assert ready.status == AvatarStatus.INACTIVE
    # The admin's add form says the same (it runs the service's checks), and saves nothing.
    client.force_login(admin_user)
    with open(face_video, "rb") as fh:
        response = client.post(
            reverse("admin:avatars_avatar_add"), {"tutor": tutor.pk, "name": "form_one", "prompt_face": fh}
        )
    assert response.status_code == 200
    assert list(response.context["adminform"].form.non_field_errors()) == [detail]
    # So does the batch command, row by row.
    folder = tmp_path / "batch"
    folder.mkdir()
    shutil.copy(face_video, folder / "ada.mp4")
    (folder / "avatars.csv").write_text(f"tutor,name,video\n{tutor.pk},batch_one,ada.mp4\n")
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("create_avatars", str(folder / "avatars.csv"), "--as", admin_user.email, stdout=out, stderr=out)
    assert f"batch_one: failed - {detail}" in out.getvalue()
    assert not Avatar.objects.filter(name__in=["form_one", "batch_one"]).exists()
    # Another admin has a quota of its own.
    theirs = tutor_create(owner=other_admin, name="Bob's tutor")
    assert _create(other_api, theirs, face_video, "bob_one").status_code == 201
    # One finished: room for one more (here a reprocess), then full again.
    Avatar.objects.filter(name="busy_one").update(status=AvatarStatus.INACTIVE)
    assert api.post(f"/api/avatars/{ready.pk}/reprocess").status_code in (200, 202)
    _is_429(_create(api, tutor, face_video, "busy_four"), "AVATAR_MAX_PROCESSING_PER_ADMIN")


@pytest.mark.integration
def test_concurrent_creates_cannot_pass_the_quota(
    transactional_db, admin_user, tutor, face_video, published_catalogues, queued, settings
):
    from avatars import services
    from avatars.services import UploadSource

    settings.AVATAR_MAX_PROCESSING_PER_ADMIN = 2
    source = UploadSource(path=str(face_video), filename="tutor.mp4")
    results = _threads(
        5, lambda i: services.avatar_create(user=admin_user, tutor_id=tutor.pk, name=f"race_{i}", prompt_face=source)
    )
    refused = [r for r in results if isinstance(r, TooManyRequests)]
    assert len(refused) == 3 and sum(isinstance(r, Avatar) for r in results) == 2, results
    assert Avatar.objects.filter(status=AvatarStatus.PROCESSING).count() == 2


# --- 3. warmed avatars per admin, and the worker's own warm cache ----------------------------


@pytest.mark.integration
def test_one_more_started_avatar_stops_the_least_recently_used(
    transactional_db,
    celery_worker_process,
    api,
    admin_user,
    request,
    settings,
):
    from avatars import live_services

    make_avatar = request.getfixturevalue("make_avatar")  # noqa: F811 - the live tests' fixture

    settings.LIVE_MAX_ACTIVE_AVATARS_PER_ADMIN = 2
    first, second, third = make_avatar("warm_a"), make_avatar("warm_b"), make_avatar("warm_c")

    def start(avatar):
        return api.post(f"/api/avatars/{avatar.pk}/start?wait=1", {}, format="json")

    try:
        for avatar in (first, second):
            assert start(avatar).status_code == 200, celery_worker_process.log()
        # A session opened on the first makes the second the least recently used.
        first.refresh_from_db()
        live_services.live_offer_message(admin_user, first, "v=0\r\n")
        response = start(third)
        assert response.status_code == 200, response.content
        statuses = {a.name: api.get(f"/api/avatars/{a.pk}").json()["status"] for a in (first, second, third)}
        assert statuses == {"warm_a": "active", "warm_b": "inactive", "warm_c": "active"}
        wait_for(
            lambda: all(second.pk not in w["avatars"] for w in registry.workers().values()),
            timeout=15,
            message="the worker to release the stopped avatar",
        )
        # Every started avatar has a viewer: none can be stopped for another, so 429.
        first.refresh_from_db()
        third.refresh_from_db()
        for avatar in (first, third):
            registry.session_add(
                f"viewer-of-{avatar.pk}", avatar_id=avatar.pk, user_id=admin_user.pk, channel=avatar.serving_channel
            )
        _is_429(start(second), "LIVE_MAX_ACTIVE_AVATARS_PER_ADMIN = 2", "open live sessions")
        assert api.get(f"/api/avatars/{second.pk}").json()["status"] == "inactive"
        assert api.get(f"/api/avatars/{first.pk}").json()["status"] == "active"
    finally:
        for avatar in (first, third):
            registry.session_remove(f"viewer-of-{avatar.pk}", admin_user.pk, avatar.pk)
        for avatar in (first, second, third):
            api.post(f"/api/avatars/{avatar.pk}/stop")


def test_the_workers_warm_cache_evicts_the_least_recently_used(monkeypatch, settings):
    from lipsync_worker import warm_avatars

    released = []

    class Engine:
        def prepare(self, assets):
            return object()

        def release(self, handle):
            released.append(handle)

    monkeypatch.setattr(warm_avatars, "_warm", type(warm_avatars._warm)())
    monkeypatch.setattr(warm_avatars, "_pinned", set())
    monkeypatch.setattr(warm_avatars, "get_engine", lambda name: Engine())
    loaded_sized = []

    def from_storage(path, sized=None):
        loaded_sized.append(sized)
        return SimpleNamespace(meta={})

    monkeypatch.setattr(warm_avatars.AvatarAssets, "from_storage", from_storage)
    settings.LIPSYNC_WARM_AVATARS_MAX = 2

    def get(pk):
        return warm_avatars.warm_avatar_get(SimpleNamespace(pk=pk, assets_path=f"a/{pk}", avatar_model="viseme"))

    one, two = get(1), get(2)
    assert get(1) is one  # a use: 2 is now the least recently used
    get(3)
    assert warm_avatars.warm_avatar_ids() == [1, 3] and released == [two.handle]
    # Pinned avatars (live sessions) stay; the one just loaded is never the one evicted.
    warm_avatars.warm_avatar_pin(1)
    warm_avatars.warm_avatar_pin(3)
    four = get(4)
    assert warm_avatars.warm_avatar_ids() == [1, 3, 4] and four.handle not in released
    get(5)
    assert warm_avatars.warm_avatar_ids() == [1, 3, 5] and released[-1] is four.handle
    # Live sessions of a viseme avatar get it at their sent size: an entry of its own beside the
    # full-size one, and both go when the avatar is released.
    live = warm_avatars.warm_avatar_get(SimpleNamespace(pk=1, assets_path="a/1", avatar_model="viseme"), live=True)
    assert live is not get(1) and loaded_sized[-1] is not None and warm_avatars.warm_avatar_ids().count(1) == 1
    assert warm_avatars.warm_avatar_release(1) and 1 not in warm_avatars.warm_avatar_ids()
    assert live.handle in released


# --- 4. concurrent live sessions, 5. session length, 6. `say` over the quota ------------------


def test_session_reservations_are_atomic(settings):
    """Many reservations at once for one admin: exactly the limit is recorded."""
    user_id, avatar_id = 987654, 876543
    ids = [f"quota-race-{i}" for i in range(12)]
    try:
        results = _threads(
            12, lambda i: registry.session_reserve(ids[i], avatar_id=avatar_id, user_id=user_id, channel="c", limit=3)
        )
        assert sum(r is None for r in results) == 3 and all(r == 3 for r in results if r is not None), results
        assert registry.user_session_count(user_id) == 3 and registry.avatar_session_count(avatar_id) == 3
        recorded = [i for i, r in zip(ids, results, strict=True) if r is None]
        registry.session_remove(recorded[0], user_id, avatar_id)
        assert (
            registry.session_reserve("quota-next", avatar_id=avatar_id, user_id=user_id, channel="c", limit=3) is None
        )
        registry.session_refresh({recorded[0]: (user_id, avatar_id)})  # a closed session is not brought back
        assert registry.user_session_count(user_id) == 3
    finally:
        for session_id in [*ids, "quota-next"]:
            registry.session_remove(session_id, user_id, avatar_id)


def test_the_worker_ends_a_session_at_its_maximum_length(monkeypatch, settings):
    """In one process, with a fake peer: the error event says why, then the session closes."""
    import numpy as np

    from lipsync_worker.live.dialogue import Dialogue
    from lipsync_worker.live.peer import Peer
    from lipsync_worker.live.runtime import LiveAvatar
    from lipsync_worker.live.session import LiveSession

    async def answer(self, sdp, sdp_type="offer"):
        return "answer"

    async def no_conversation(self):
        return None  # no database here: the session's conversation record is not the point

    monkeypatch.setattr(Peer, "answer", answer)
    monkeypatch.setattr(Peer, "show", lambda self, image, pcm, tick: None)
    monkeypatch.setattr(Dialogue, "open", no_conversation)
    settings.LIVE_MAX_SESSION_SECONDS = 0.5

    class Assets:
        frame_count = 4
        size = (8, 8)

        def idle_frame_index(self, k):
            return k % 4

        def frame(self, index):
            return np.zeros((8, 8, 3), np.uint8)

        def frame_readonly(self, index):
            image = self.frame(index)
            image.setflags(write=False)
            return image

    class Runtime:
        channel = "test"

        def __init__(self):
            self.events, self.closed = [], []

        async def send(self, channel, message):
            self.events.append(message["event"])

        async def session_closed(self, session):
            self.closed.append(session.id)

    async def main():
        runtime = Runtime()
        warm = SimpleNamespace(engine=None, handle=None, assets=Assets())
        session = LiveSession(runtime, LiveAvatar(1, "fake", warm, "piper", "", "", ""), user_id=1, reply_to="viewer")
        started = time.monotonic()
        await session.answer("offer")
        while not session.closed and time.monotonic() - started < 5:
            await asyncio.sleep(0.05)
        return session, time.monotonic() - started, runtime

    session, took, runtime = asyncio.run(main())
    assert session.closed and 0.4 < took < 3
    kinds = [e["type"] for e in runtime.events]
    error = next(e for e in runtime.events if e["type"] == "error")
    assert "maximum length of 0.5 s" in error["detail"] and "LIVE_MAX_SESSION_SECONDS" in error["detail"]
    assert kinds.index("error") < len(kinds) - 1 and runtime.events[-1]["state"] == "closed"
    assert runtime.events[-1]["reason"] == "maximum length reached" and runtime.closed == [session.id]


@pytest.fixture
def quota_daphne(process_env, tmp_path_factory):
    """The web server with a small speech quota (a setting of its process)."""
    server = DaphneServer({**process_env, "TTS_MAX_CHARS_PER_MINUTE": "100"}, tmp_path_factory.mktemp("d") / "d.log")
    yield server
    server.stop()


@pytest.mark.integration
def test_live_sessions_per_admin_session_length_and_the_say_quota(
    transactional_db,
    start_worker,
    quota_daphne,
    admin_user,
    request,
    settings,
):
    """A worker with LIVE_MAX_SESSIONS_PER_ADMIN=2: five offers at once, two answered; a
    closed session frees its place; past the speech quota a `say` gets an error event; past
    LIVE_MAX_SESSION_SECONDS each session is ended with an error event saying why."""
    import json
    import urllib.error
    import urllib.request

    from avatars import quotas
    from lipsync_worker.tasks import live_start_task
    from tests.live.client import LiveClient, loopback_only_ice

    loopback_only_ice()
    make_avatar = request.getfixturevalue("make_avatar")  # noqa: F811 - the live tests' fixtures
    token = request.getfixturevalue("token")  # noqa: F811
    worker = start_worker(
        "quota-live",
        queues="quota-live",
        LIVE_MAX_SESSIONS_PER_ADMIN=2,
        LIVE_MAX_SESSIONS_PER_WORKER=10,
        LIVE_MAX_SESSION_SECONDS=8,
    )
    avatar = make_avatar("quota_live")
    outcome = live_start_task.apply_async(args=[avatar.pk, "", ""], queue="quota-live").get(timeout=60)
    assert outcome["status"] == "active", (outcome, worker.log())
    settings.TTS_MAX_CHARS_PER_MINUTE = 100  # as in the web server's process
    url = quota_daphne.ws_url
    result = {}

    def proxy_offer():
        request = urllib.request.Request(
            f"{quota_daphne.url}/api/avatars/webrtc/offer",
            data=json.dumps({"sdp": "v=0\r\n", "type": "offer", "avatar_id": avatar.pk}).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(request, timeout=30)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Retry-After"), json.loads(exc.read())
        return 200, None, {}

    async def scenario():
        loop = asyncio.get_running_loop()
        clients = [LiveClient(url, avatar.pk, token, keep_frames=False) for _ in range(5)]
        answers = await asyncio.gather(*(c.connect() for c in clients))
        result["answers"] = answers
        result["open"] = await loop.run_in_executor(None, registry.user_session_count, admin_user.pk)
        result["proxy"] = await loop.run_in_executor(None, proxy_offer)
        opened = [c for c, a in zip(clients, answers, strict=True) if a["type"] == "answer"]
        # Closing one frees its place.
        await opened[0].close()
        again = LiveClient(url, avatar.pk, token, keep_frames=False)
        result["again"] = await again.connect()
        # The speech quota: the admin's characters of this minute are used up.
        if 60 - time.time() % 60 < 3:
            await asyncio.sleep(4)  # not across a minute's end
        await loop.run_in_executor(None, quotas.tts_chars_charge, admin_user.pk, "x" * 100)
        await again.send({"type": "say", "text": SAY_TEXT})
        result["say"] = await again.wait_event(lambda e: e["type"] == "error", 10)
        # Each open session ends at its maximum length, with the reason.
        for client in (opened[1], again):
            result.setdefault("ended", []).append(
                await client.wait_event(lambda e: e["type"] == "error" and "maximum length" in e["detail"], 20)
            )
            await client.wait_event(lambda e: e.get("type") == "state" and e.get("state") == "closed", 10)
        result["open_after"] = await loop.run_in_executor(None, registry.user_session_count, admin_user.pk)
        for client in clients + [again]:
            await client.close(bye=False)

    try:
        asyncio.run(scenario())
    finally:
        from avatars import live_services

        live_services.avatar_stop(avatar=Avatar.objects.get(pk=avatar.pk))
    answers = result["answers"]
    assert sum(a["type"] == "answer" for a in answers) == 2, answers
    refusals = [a for a in answers if a["type"] == "error"]
    assert len(refusals) == 3 and all("LIVE_MAX_SESSIONS_PER_ADMIN = 2" in a["detail"] for a in refusals), refusals
    assert result["open"] == 2
    status, retry_after, body = result["proxy"]
    assert status == 429 and int(retry_after) > 0 and "LIVE_MAX_SESSIONS_PER_ADMIN" in body["detail"], result["proxy"]
    assert result["again"]["type"] == "answer", result["again"]
    assert "TTS_MAX_CHARS_PER_MINUTE" in result["say"]["detail"] and "Try again in" in result["say"]["detail"]
    assert all("LIVE_MAX_SESSION_SECONDS" in e["detail"] for e in result["ended"])
    assert result["open_after"] == 0


# --- 6. TTS characters per minute ----------------------------------------------------------------


@pytest.mark.django_db
def test_speech_characters_per_minute_per_admin(
    api, other_api, admin_user, other_admin, tutor, published_catalogues, queued, frozen_minute, settings, monkeypatch
):
    from avatars import live_services

    settings.TTS_MAX_CHARS_PER_MINUTE = 50
    mine = _ready(tutor, "speaker")
    # A voice preview (30) and a talking clip (10): 40 of 50 used.
    response = api.post(
        "/api/tts/preview", {"text": "x" * 30, "tts_model": "piper", "avatar_id": mine.pk}, format="json"
    )
    assert response.status_code == 202, response.content
    assert api.post(f"/api/avatars/{mine.pk}/render", {"text": "y" * 10}, format="json").status_code == 202
    body = _is_429(
        api.post("/api/tts/preview", {"text": "z" * 20, "tts_model": "piper"}, format="json"),
        "40 of the 50 characters",
        "TTS_MAX_CHARS_PER_MINUTE",
        "Try again in 45 s",
    )
    assert body["retry_after"] == 45
    _is_429(api.post(f"/api/avatars/{mine.pk}/render", {"text": "y" * 11}, format="json"), "TTS_MAX_CHARS_PER_MINUTE")
    assert AvatarRender.objects.count() == 1  # the refused clip was not queued
    # The proxy's `human` is counted before it reaches the worker: past the quota (with
    # interrupt too) nothing is relayed, so no TTS job starts and none is cancelled.
    relayed = []
    monkeypatch.setattr(
        live_services, "live_request", lambda channel, message, timeout=None: relayed.append(message) or {"type": "ok"}
    )
    registry.worker_beat("quota-fake-worker", {})
    registry.session_add("quota-fake-session", avatar_id=mine.pk, user_id=admin_user.pk, channel="quota-fake-worker")
    try:

        def human(text):
            return api.post(
                "/api/avatars/webrtc/human",
                {"sessionid": "quota-fake-session", "text": text, "type": "echo", "interrupt": True},
                format="json",
            )

        assert human("w" * 10).status_code == 200
        for _ in range(5):
            _is_429(human("v" * 5), "50 of the 50 characters", "Try again in 45 s")
        assert [m["text"] for m in relayed] == ["w" * 10]
        # Another admin's quota is its own; a text longer than a minute's quota is a 400.
        assert other_api.post("/api/tts/preview", {"text": "x" * 50}, format="json").status_code == 202
        response = other_api.post("/api/tts/preview", {"text": "x" * 51}, format="json")
        assert response.status_code == 400 and "TTS_MAX_CHARS_PER_MINUTE" in response.json()["detail"]
        # The next minute starts afresh.
        frozen_minute(45)
        assert human("v" * 5).status_code == 200 and len(relayed) == 2
    finally:
        registry.session_remove("quota-fake-session", admin_user.pk, mine.pk)
        registry.worker_forget("quota-fake-worker")
