"""Start answers at once with a job (the worker reports on the events channel), `?wait=1`
keeps the synchronous answer, and deleting an avatar frees its worker first. No worker
runs here: the task queue is replaced by a recorder and the worker's reports are the
services it calls (`avatar_live_started`, `avatar_live_start_failed`)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from avatars import live_services
from avatars.events import avatar_group_name
from avatars.models import Avatar, AvatarStatus
from contracts import tasks
from tests.avatars.live_fakes import fake_queue_install

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue(monkeypatch):
    return fake_queue_install(monkeypatch)


@pytest.fixture
def ready(tutor):
    return Avatar.objects.create(
        tutor=tutor,
        name="ready_ada",
        display_name="Ada",
        status=AvatarStatus.INACTIVE,
        assets_path="avatars/x/assets/1",
    )


def _worker_alive(monkeypatch, *channels):
    monkeypatch.setattr(live_services.registry, "worker_alive", lambda channel: channel in channels)
    facts = {"name": "fake worker", "draining": False}
    monkeypatch.setattr(live_services.registry, "worker_facts", lambda channel: facts if channel in channels else None)


async def _receive(layer, channel, timeout=5.0):
    return await asyncio.wait_for(layer.receive(channel), timeout)


@pytest.fixture
def events(ready):
    """The avatar's events channel, as a client of WS /ws/avatars/{id}/events/ gets it."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(avatar_group_name(ready.pk), channel)

    def next_event():
        return async_to_sync(_receive)(layer, channel)

    yield next_event
    async_to_sync(layer.group_discard)(avatar_group_name(ready.pk), channel)


def test_start_answers_at_once_with_a_job(api, ready, queue):
    response = api.post(f"/api/avatars/{ready.pk}/start", {}, format="json")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "starting"
    assert body["job_id"].startswith(f"live-start-{ready.pk}-")
    assert body["avatar"]["id"] == ready.pk and body["avatar"]["status"] == "inactive"
    assert f"/ws/avatars/{ready.pk}/events/" in body["message"]
    # One warm-up queued, by name, with the avatar and where the proxy answers.
    [sent] = queue.sent
    assert sent["name"] == tasks.LIVE_START and sent["task_id"] == body["job_id"]
    assert sent["args"][0] == ready.pk and sent["args"][2].endswith("/api/avatars/webrtc")

    # Asked again while it runs: the same job, nothing queued twice.
    again = api.post(f"/api/avatars/{ready.pk}/start", {}, format="json")
    assert again.status_code == 202 and again.json()["job_id"] == body["job_id"]
    assert len(queue.sent) == 1

    # The job's state: starting (202) until the worker reports.
    poll = api.get(f"/api/avatars/{ready.pk}/start", {"job_id": body["job_id"]})
    assert poll.status_code == 202 and poll.json()["status"] == "starting"
    assert api.get(f"/api/avatars/{ready.pk}/start").json()["job_id"] == body["job_id"]  # the one under way


def test_worker_success_is_reported_as_started(api, ready, queue, events, monkeypatch):
    job_id = api.post(f"/api/avatars/{ready.pk}/start", {}, format="json").json()["job_id"]
    starting = events()
    assert starting["event"] == "avatar.starting" and starting["avatar"]["starting"] is True
    assert starting["job"] == {"kind": "start", "job_id": job_id, "status": "starting"}

    # The worker warmed it and records itself (what lipsync_worker/live/start.py does).
    _worker_alive(monkeypatch, "chan-1")
    live_services.avatar_live_started(ready.pk, serving_worker="w1", serving_channel="chan-1", engine_url="http://x")
    queue.states[job_id] = ("SUCCESS", {"status": "active", "serving_worker": "w1", "serving_channel": "chan-1"})

    started = events()
    assert started["event"] == "avatar.started"
    assert started["avatar"]["status"] == "active" and started["avatar"]["starting"] is False
    assert started["job"]["status"] == "active" and started["job"]["job_id"] == job_id
    poll = api.get(f"/api/avatars/{ready.pk}/start", {"job_id": job_id})
    assert poll.status_code == 200
    assert poll.json()["status"] == "active" and poll.json()["avatar"]["status"] == "active"
    # Served now: start answers 200 at once, nothing queued.
    response = api.post(f"/api/avatars/{ready.pk}/start", {}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "success"
    assert len(queue.sent) == 1


def test_worker_failure_is_reported_with_its_reason(api, ready, queue, events):
    job_id = api.post(f"/api/avatars/{ready.pk}/start", {}, format="json").json()["job_id"]
    events()  # avatar.starting

    reason = "The avatar could not be loaded on the worker (RuntimeError: out of memory)."
    live_services.avatar_live_start_failed(ready.pk, reason)
    queue.states[job_id] = ("SUCCESS", {"status": "error", "detail": reason})

    failed = events()
    assert failed["event"] == "avatar.start_failed"
    assert failed["job"] == {"kind": "start", "job_id": job_id, "status": "failed", "detail": reason}
    assert failed["avatar"]["status"] == "inactive" and failed["avatar"]["starting"] is False
    assert failed["avatar"]["error_message"] == f"Start failed: {reason}"
    poll = api.get(f"/api/avatars/{ready.pk}/start", {"job_id": job_id})
    assert poll.status_code == 200
    assert poll.json()["status"] == "failed" and poll.json()["detail"] == reason
    ready.refresh_from_db()
    assert ready.status == "inactive" and reason in ready.error_message
    # A task that crashed is a failure too.
    queue.states[job_id] = ("FAILURE", RuntimeError("worker lost"))
    assert "worker lost" in api.get(f"/api/avatars/{ready.pk}/start", {"job_id": job_id}).json()["detail"]


def test_start_job_lookup_is_scoped_to_the_avatar(api, other_api, ready, tutor, queue):
    job_id = api.post(f"/api/avatars/{ready.pk}/start", {}, format="json").json()["job_id"]
    other = Avatar.objects.create(tutor=tutor, name="second", status=AvatarStatus.INACTIVE, assets_path="a/b")
    # Another avatar's job id, a made-up one, another admin: all not found.
    assert api.get(f"/api/avatars/{other.pk}/start", {"job_id": job_id}).status_code == 404
    assert api.get(f"/api/avatars/{ready.pk}/start", {"job_id": f"live-start-{ready.pk}-nope"}).status_code == 404
    assert other_api.get(f"/api/avatars/{ready.pk}/start", {"job_id": job_id}).status_code == 404
    assert other_api.post(f"/api/avatars/{ready.pk}/start", {}, format="json").status_code == 404
    assert api.get(f"/api/avatars/{other.pk}/start").status_code == 404  # nothing under way
    assert len(queue.sent) == 1


def test_start_refuses_what_it_always_refused(api, ready, tutor, queue):
    busy = Avatar.objects.create(tutor=tutor, name="busy", status=AvatarStatus.PROCESSING, progress_percent=40)
    response = api.post(f"/api/avatars/{busy.pk}/start", {}, format="json")
    assert response.status_code == 409 and "processed" in response.json()["detail"]
    response = api.post(f"/api/avatars/{ready.pk}/start", {"bogus": 1}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "Unknown fields: bogus; start accepts only ref_file."
    assert response.json()["field"] == "bogus"
    response = api.post(f"/api/avatars/{ready.pk}/start", {"ref_file": "../../etc/passwd"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "ref_file"
    assert api.post(f"/api/avatars/{ready.pk}/start?wait=perhaps", {}, format="json").status_code == 400
    assert queue.sent == []


def test_wait_1_keeps_the_synchronous_answer(api, ready, queue, monkeypatch):
    def worker_answers(result):
        _worker_alive(monkeypatch, "chan-9")
        live_services.avatar_live_started(ready.pk, serving_worker="w9", serving_channel="chan-9", engine_url="")
        return {"status": "active", "serving_worker": "w9", "serving_channel": "chan-9"}

    queue.outcome_on_wait = worker_answers
    response = api.post(f"/api/avatars/{ready.pk}/start?wait=1", {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "success",
        "message": "Avatar 'ready_ada' started successfully",
        "engine_url": "http://testserver/api/avatars/webrtc",
    }


def test_wait_1_failure_and_timeout(api, ready, tutor, queue):
    queue.outcome_on_wait = lambda result: {"status": "error", "detail": "The avatar could not be loaded."}
    response = api.post(f"/api/avatars/{ready.pk}/start?wait=1", {}, format="json")
    assert response.status_code == 409 and response.json()["detail"] == "The avatar could not be loaded."

    slow = Avatar.objects.create(tutor=tutor, name="slow", status=AvatarStatus.INACTIVE, assets_path="a/b")
    queue.outcome_on_wait = None  # still warming at the timeout
    response = api.post(f"/api/avatars/{slow.pk}/start?wait=1", {}, format="json")
    assert response.status_code == 202
    assert response.json()["status"] == "starting" and response.json()["job_id"].startswith(f"live-start-{slow.pk}-")


# --- delete frees the worker first ------------------------------------------------------------


def test_deleting_a_served_avatar_stops_it_on_its_worker_first(
    api, ready, monkeypatch, django_capture_on_commit_callbacks
):
    Avatar.objects.filter(pk=ready.pk).update(status=AvatarStatus.ACTIVE, serving_worker="w1", serving_channel="chan-1")
    _worker_alive(monkeypatch, "chan-1")
    told = []

    def live_request(channel, message, timeout=None):
        # The worker is told while the avatar still exists.
        told.append((channel, message, Avatar.objects.filter(pk=ready.pk).exists()))
        return {"type": "ok"}

    monkeypatch.setattr(live_services, "live_request", live_request)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/api/avatars/{ready.pk}")
    assert response.json() == {"status": "success", "message": "Avatar 'ready_ada' deleted successfully"}
    assert told == [("chan-1", {"type": "live.stop_avatar", "avatar_id": ready.pk}, True)]
    assert not Avatar.objects.filter(pk=ready.pk).exists()


def test_deleting_an_avatar_nobody_serves_waits_on_nothing(api, ready, tutor, monkeypatch):
    def must_not_be_called(*args, **kwargs):
        raise AssertionError("deleting an avatar no worker serves must not talk to a worker")

    monkeypatch.setattr(live_services, "live_request", must_not_be_called)
    monkeypatch.setattr(live_services, "live_send", must_not_be_called)
    monkeypatch.setattr(live_services.registry, "worker_alive", must_not_be_called)
    assert api.delete(f"/api/avatars/{ready.pk}").status_code == 200
    assert not Avatar.objects.filter(pk=ready.pk).exists()

    # An avatar still marked active on a worker that died: nothing to wait for either.
    dead = Avatar.objects.create(
        tutor=tutor,
        name="on_dead_worker",
        status=AvatarStatus.ACTIVE,
        serving_worker="gone",
        serving_channel="chan-dead",
        assets_path="a/b",
    )
    monkeypatch.setattr(live_services.registry, "worker_alive", lambda channel: False)
    assert api.delete(f"/api/avatars/{dead.pk}").status_code == 200
    assert not Avatar.objects.filter(pk=dead.pk).exists()


def test_deleting_a_tutor_stops_its_served_avatars(api, ready, tutor, monkeypatch):
    Avatar.objects.filter(pk=ready.pk).update(status=AvatarStatus.ACTIVE, serving_worker="w1", serving_channel="chan-1")
    _worker_alive(monkeypatch, "chan-1")
    told = []
    monkeypatch.setattr(
        live_services, "live_request", lambda channel, message, timeout=None: told.append(message) or {"type": "ok"}
    )
    assert api.delete(f"/api/tutors/{tutor.pk}").status_code == 200
    assert told == [{"type": "live.stop_avatar", "avatar_id": ready.pk}]
    assert not Avatar.objects.filter(pk=ready.pk).exists()
