"""Per-tutor limits (issue 12): set by the tutor's admin (a tutor account cannot), shown as
usage figures and bars, enforced where used with a 429 naming the limit (monthly ones with
Retry-After until the 1st of next month, UTC), and not passed by parallel requests."""

from __future__ import annotations

import pytest

from avatars.models import Avatar, AvatarRender, AvatarStatus
from contracts import live_registry as registry
from contracts import usage
from contracts.errors import TooManyRequests
from tests.hardening.test_quotas import _threads
from tests.roles import world_fixture  # noqa: F401 (the `world` fixture)
from tutors.models import Tutor

LIMITS = ("max_avatars", "max_live_sessions", "monthly_live_minutes", "monthly_render_minutes", "max_storage_mb")


@pytest.fixture
def queued(monkeypatch):
    from avatars import render_services, services

    for module in (render_services, services):
        monkeypatch.setattr(module, "task_send", lambda *args, **kwargs: None)


def _ready(tutor, name: str, **fields) -> Avatar:
    return Avatar.objects.create(
        tutor=tutor, name=name, status=AvatarStatus.INACTIVE, assets_path="a/x", video_path="v.mp4", **fields
    )


def _is_429(response, limit: str, monthly: bool) -> dict:
    assert response.status_code == 429, response.content
    body = response.json()
    assert limit in body["detail"] and body["limit"] == limit, body
    retry = int(response["Retry-After"])
    if monthly:
        assert abs(retry - usage.seconds_to_month_end()) < 30 and "resets on" in body["detail"], body
    return body


@pytest.mark.django_db
def test_the_admin_sets_limits_and_a_tutor_cannot(world):
    url = f"/api/tutors/{world.tutor.pk}"
    body = {"max_avatars": 3, "monthly_live_minutes": 120, "max_storage_mb": 0}
    response = world.client("admin").patch(url, body, format="json")
    assert response.status_code == 200, response.content
    assert {k: response.json()[k] for k in LIMITS} == {
        "max_avatars": 3,
        "max_live_sessions": None,
        "monthly_live_minutes": 120,
        "monthly_render_minutes": None,
        "max_storage_mb": 0,
    }
    assert world.client("tutor").patch(url, {"max_avatars": 99}, format="json").status_code == 403
    assert world.client("other_admin").patch(url, {"max_avatars": 99}, format="json").status_code == 404
    for bad in (-1, "many", 1.5):
        response = world.client("admin").patch(url, {"max_avatars": bad}, format="json")
        assert response.status_code == 400 and "max_avatars" in response.json()["detail"], (bad, response.content)
    assert Tutor.objects.get(pk=world.tutor.pk).max_avatars == 3
    # Back to the default.
    assert world.client("admin").patch(url, {"max_avatars": None}, format="json").json()["max_avatars"] is None


@pytest.mark.django_db
def test_usage_gives_each_limit_its_use_and_what_is_left(world, settings):
    settings.TUTOR_MAX_AVATARS = 10
    Tutor.objects.filter(pk=world.tutor.pk).update(monthly_live_minutes=100, max_storage_mb=0)
    usage.live_seconds_add(world.tutor.pk, None, 30 * 60)
    AvatarRender.objects.create(avatar=world.avatar, usage_tutor=world.tutor, status="done", duration_seconds=90)
    AvatarRender.objects.create(avatar=world.avatar, usage_tutor=world.tutor, estimated_seconds=30)  # queued
    Avatar.objects.filter(pk=world.avatar.pk).update(storage_bytes=3 * 1024 * 1024)
    for role in ("admin", "tutor"):
        response = world.client(role).get(f"/api/tutors/{world.tutor.pk}/usage")
        assert response.status_code == 200, response.content
        rows = response.json()["limits"]
        assert rows["max_avatars"] == {**rows["max_avatars"], "limit": 10, "used": 1, "left": 9, "from_setting": True}
        assert rows["monthly_live_minutes"]["limit"] == 100 and rows["monthly_live_minutes"]["used"] == 30
        assert rows["monthly_live_minutes"]["left"] == 70 and rows["monthly_live_minutes"]["from_setting"] is False
        assert rows["monthly_render_minutes"]["used"] == 2.0  # 90 s done + 30 s estimated
        assert rows["max_storage_mb"]["used"] == 3 and rows["max_storage_mb"]["limit"] is None  # 0: none
        reset = rows["monthly_live_minutes"]["resets_at"]
        assert reset == usage.month_now()[1].isoformat().replace("+00:00", "Z") and reset.endswith("-01T00:00:00Z")
        assert rows["max_avatars"]["resets_at"] is None
    for role in ("other_tutor", "grantee_use", "other_admin"):
        assert world.client(role).get(f"/api/tutors/{world.tutor.pk}/usage").status_code == 404, role


@pytest.mark.django_db
def test_the_admin_page_shows_usage_bars_and_edits_limits(world, client):
    Tutor.objects.filter(pk=world.tutor.pk).update(max_avatars=4)
    client.force_login(world.users["admin"])
    page = client.get(f"/admin/tutors/tutor/{world.tutor.pk}/change/").content.decode()
    assert '<tr data-limit="max_avatars">' in page and '<progress max="4" value="1"' in page
    assert 'name="max_avatars"' in page
    client.force_login(world.users["tutor"])  # read-only for the tutor: figures, no inputs
    page = client.get(f"/admin/tutors/tutor/{world.tutor.pk}/change/").content.decode()
    assert '<tr data-limit="max_avatars">' in page and 'name="max_avatars"' not in page


@pytest.mark.django_db
def test_create_render_and_offer_are_refused_past_the_limits(world, face_video, published_catalogues, queued):
    admin = world.client("admin")
    Tutor.objects.filter(pk=world.tutor.pk).update(max_avatars=1)  # it has secret_avatar
    with open(face_video, "rb") as fh:
        response = admin.post(
            "/api/avatars/create", {"tutor_id": world.tutor.pk, "name": "one_more", "prompt_face": fh}
        )
    _is_429(response, "max_avatars", monthly=False)
    # Storage: what is recorded plus the upload.
    Tutor.objects.filter(pk=world.tutor.pk).update(max_avatars=None, max_storage_mb=1)
    Avatar.objects.filter(pk=world.avatar.pk).update(storage_bytes=1024 * 1024 - 10)
    with open(face_video, "rb") as fh:
        response = admin.post(
            "/api/avatars/create", {"tutor_id": world.tutor.pk, "name": "one_more", "prompt_face": fh}
        )
    _is_429(response, "max_storage_mb", monthly=False)
    # Render minutes: the estimate of a text counts until the clip is done.
    ready = _ready(world.tutor, "talker")
    Tutor.objects.filter(pk=world.tutor.pk).update(monthly_render_minutes=1)
    long_text = "A sentence of about forty characters ok. " * 22  # about 66 s
    _is_429(
        admin.post(f"/api/avatars/{ready.pk}/render", {"text": long_text}, format="json"),
        "monthly_render_minutes",
        True,
    )
    assert admin.post(f"/api/avatars/{ready.pk}/render", {"text": "Hello there."}, format="json").status_code == 202
    # Live minutes: the month's are used up, so no session opens (the avatar "served" by a fake worker).
    Tutor.objects.filter(pk=world.tutor.pk).update(monthly_live_minutes=10)
    usage.live_seconds_add(world.tutor.pk, None, 600)
    registry.worker_beat("limits-fake-worker", {"name": "fake"})
    Avatar.objects.filter(pk=ready.pk).update(status="active", serving_channel="limits-fake-worker")
    try:
        offer = {"avatar_id": ready.pk, "sdp": "v=0\r\n"}
        _is_429(admin.post("/api/avatars/webrtc/offer", offer, format="json"), "monthly_live_minutes", True)
    finally:
        registry.worker_forget("limits-fake-worker")


@pytest.mark.django_db
def test_a_grantees_use_counts_against_its_own_tutor(world, published_catalogues, queued):
    ready = _ready(world.tutor, "shared_talker")
    from avatars import share_services

    share_services.avatar_share_create(ready, by=world.users["admin"], email="dee@third.test", permission="use")
    share_services.avatar_share_create(ready, by=world.users["admin"], email="carol@third.test", permission="use")
    for role, tutor_name in (("grantee_manage", "Ms Dee"), ("grantee_use", "Ms Ada"), ("tutor", "Ms Ada")):
        response = world.client(role).post(f"/api/avatars/{ready.pk}/render", {"text": "Hi."}, format="json")
        assert response.status_code == 202, (role, response.content)
        assert AvatarRender.objects.get(pk=response.json()["id"]).usage_tutor.name == tutor_name, role
    # Dee's tutor is out of render minutes: refused for dee, not for the owner side.
    Tutor.objects.filter(name="Ms Dee").update(monthly_render_minutes=0 + 1)
    AvatarRender.objects.filter(usage_tutor__name="Ms Dee").update(estimated_seconds=60)
    response = world.client("grantee_manage").post(f"/api/avatars/{ready.pk}/render", {"text": "Hi."}, format="json")
    _is_429(response, "monthly_render_minutes", True)
    assert (
        world.client("tutor").post(f"/api/avatars/{ready.pk}/render", {"text": "Hi."}, format="json").status_code == 202
    )


# --- concurrency ------------------------------------------------------------------------------


@pytest.mark.integration
def test_parallel_creates_cannot_pass_max_avatars(
    transactional_db, admin_user, tutor, face_video, published_catalogues, queued, settings
):
    from avatars import services
    from avatars.services import UploadSource

    settings.AVATAR_MAX_PROCESSING_PER_ADMIN = 100
    Tutor.objects.filter(pk=tutor.pk).update(max_avatars=3)
    source = UploadSource(path=str(face_video), filename="tutor.mp4")
    results = _threads(
        8, lambda i: services.avatar_create(user=admin_user, tutor_id=tutor.pk, name=f"limit_{i}", prompt_face=source)
    )
    refused = [r for r in results if isinstance(r, TooManyRequests)]
    assert len(refused) == 5 and sum(isinstance(r, Avatar) for r in results) == 3, results
    assert all("max_avatars" in r.detail for r in refused)
    assert Avatar.objects.filter(tutor=tutor).count() == 3


def test_parallel_session_reservations_cannot_pass_max_live_sessions():
    """Many reservations at once for one tutor (two admins' avatars): exactly its limit."""
    tutor_id = 765432
    ids = [f"tutor-race-{i}" for i in range(8)]
    try:
        results = _threads(
            8,
            lambda i: registry.session_reserve_checked(
                ids[i],
                avatar_id=1000 + i % 2,
                user_id=2000 + i % 2,
                channel="c",
                limit=10,
                tutor_id=tutor_id,
                tutor_limit=3,
            ),
        )
        assert sum(r is None for r in results) == 3, results
        assert all(r == ("tutor", 3) for r in results if r is not None), results
        assert registry.tutor_session_count(tutor_id) == 3
        recorded = [i for i, r in zip(ids, results, strict=True) if r is None]
        registry.session_remove(recorded[0], 2000, 1000, tutor_id)
        registry.session_remove(recorded[0], 2001, 1001, tutor_id)
        assert registry.tutor_session_count(tutor_id) == 2
    finally:
        for i, session_id in enumerate(ids):
            registry.session_remove(session_id, 2000 + i % 2, 1000 + i % 2, tutor_id)
