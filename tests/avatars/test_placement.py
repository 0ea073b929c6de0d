"""Placement of starts over live workers, from their heartbeats in Redis (written here as a
worker writes them; tests/live/test_cluster.py runs real workers). The start queue is the
stand-in of tests/avatars/live_fakes.py: what a start sends, and to which worker's queue."""

from __future__ import annotations

import uuid

import pytest

from avatars.live_placement import placement_choose
from avatars.models import Avatar, AvatarStatus
from contracts import live_registry as registry
from tests.avatars.live_fakes import fake_queue_install

pytestmark = pytest.mark.django_db


@pytest.fixture
def beat(settings):
    # A key prefix of its own: the suite's real workers' heartbeats are not candidates here.
    settings.REDIS_KEY_PREFIX = f"vt-placement-{uuid.uuid4().hex[:8]}"
    channels = []

    def beat(
        name, *, device="cpu", engines=("viseme",), sessions=0, max_sessions=6, draining=False, placeable=True
    ) -> str:
        channel = f"live.test-{uuid.uuid4().hex}"
        facts = {
            "name": f"{name}@host pid 1",
            "hostname": f"{name}@host",
            "device": device,
            "engines": list(engines),
            "sessions": sessions,
            "max_sessions": max_sessions,
            "draining": draining,
            "placeable": placeable,
            "avatars": [],
        }
        registry.worker_beat(channel, facts)
        channels.append(channel)
        return channel

    yield beat
    for channel in channels:
        registry.worker_forget(channel)


def _avatar(tutor, name="placed", model="viseme") -> Avatar:
    return Avatar.objects.create(
        tutor=tutor, name=name, status=AvatarStatus.INACTIVE, assets_path="a/b", avatar_model=model
    )


def test_the_worker_with_most_free_places_is_chosen_with_the_reason(tutor, beat):
    beat("busy", sessions=5)
    free = beat("free", sessions=1)
    beat("private", max_sessions=50, placeable=False)  # a runtime outside the `live` queue
    placement = placement_choose(_avatar(tutor))
    assert placement.channel == free and placement.hostname == "free@host" and placement.device == "cpu"
    assert placement.reason == (
        "most free capacity of 2 workers able to run viseme: 5 of 6 session places free, 0 avatars warm"
    )


def test_a_draining_worker_takes_nothing_new(tutor, beat):
    beat("leaving", draining=True)
    with pytest.raises(Exception) as refused:
        placement_choose(_avatar(tutor))
    assert refused.value.status_code == 503
    assert "No running lip-sync worker can run 'viseme'" in refused.value.detail and "draining" in refused.value.detail
    staying = beat("staying", sessions=5)
    placement = placement_choose(_avatar(tutor, "second"))
    assert placement.channel == staying and placement.reason.startswith("the only worker able to run viseme")


def test_an_engine_no_worker_has_is_refused_with_the_workers_listed(tutor, beat):
    beat("cpu1")
    with pytest.raises(Exception) as refused:
        placement_choose(_avatar(tutor, model="wav2lip"))
    assert refused.value.status_code == 503
    assert "can run 'wav2lip'" in refused.value.detail and "cpu1@host pid 1 (cpu, viseme)" in refused.value.detail


def test_a_gpu_engine_goes_to_a_gpu_worker_never_to_a_cpu_one(tutor, beat, settings):
    cpu = beat("cpu1", engines=("viseme", "MuseTalk"))
    with pytest.raises(Exception) as refused:
        placement_choose(_avatar(tutor, model="MuseTalk"))
    assert "needs a lip-sync worker with a GPU" in refused.value.detail
    settings.LIVE_GPU_ENGINES_ON_CPU = True
    fallback = placement_choose(_avatar(tutor, "fallback", model="MuseTalk"))
    assert fallback.channel == cpu and "no GPU worker" in fallback.reason
    gpu = beat("gpu1", device="cuda:0", engines=("viseme", "MuseTalk"), sessions=4)
    placement = placement_choose(_avatar(tutor, "neural", model="MuseTalk"))
    assert placement.channel == gpu and placement.device == "cuda:0"
    assert placement.reason.startswith("the only GPU worker able to run MuseTalk")
    # A CPU engine may use any worker: the one with more free places.
    assert placement_choose(_avatar(tutor, "light")).channel == cpu


def test_starts_in_quick_succession_spread_and_go_to_the_chosen_worker(api, tutor, beat, monkeypatch, settings):
    from celery.utils import worker_direct

    settings.LIVE_MAX_ACTIVE_AVATARS_PER_ADMIN = 10
    queue = fake_queue_install(monkeypatch)
    beat("one")
    beat("two")
    avatars = [_avatar(tutor, f"quick_{i}") for i in range(4)]
    for avatar in avatars:
        assert api.post(f"/api/avatars/{avatar.pk}/start", {}, format="json").status_code == 202
    queues = [sent["options"]["queue"] for sent in queue.sent]
    # Nothing has warmed yet (no heartbeat shows them): the starts on their way are counted.
    assert sorted(q.name for q in queues) == sorted(
        [worker_direct("one@host").name] * 2 + [worker_direct("two@host").name] * 2
    )
    reasons = [sent["args"][3] for sent in queue.sent]
    assert reasons[0].endswith("0 avatars warm") and reasons[1].endswith("0 avatars warm")
    assert reasons[2].endswith("1 avatars warm") and reasons[3].endswith("1 avatars warm")


def test_operators_see_the_workers_and_the_placements(client, operator, admin_user, tutor, beat):
    beat("gpu1", device="cuda:0", engines=("viseme", "MuseTalk"), sessions=2)
    beat("old", draining=True)
    served = _avatar(tutor, "served_ada")
    Avatar.objects.filter(pk=served.pk).update(
        status=AvatarStatus.ACTIVE,
        serving_worker="gpu1@host pid 1",
        serving_channel="live.gpu1",
        serving_device="cuda:0",
        serving_reason="the only worker able to run viseme; 4 of 6 session places free, 0 avatars warm",
    )
    client.force_login(operator)
    page = client.get("/admin/live-workers/").content.decode()
    assert "gpu1@host pid 1</td><td>cuda:0</td><td>viseme, MuseTalk</td>" in page
    assert "<td>2 / 6</td><td>4</td>" in page and "draining" in page
    assert "the only worker able to run viseme; 4 of 6 session places free" in page
    client.force_login(admin_user)  # a tutoring company's admin: not the operators' page
    assert client.get("/admin/live-workers/").status_code == 403
