"""Batches from a template: `POST /api/avatars/batch` with a mix of good and bad files,
items followed through their avatars' processing, limits per item, scoping, and the
admin's "Create from template" page."""

from __future__ import annotations

import contextlib

import pytest

from avatar_templates.models import AvatarBatch, AvatarTemplate
from avatars import services
from avatars.models import Avatar, AvatarStatus
from conversations.models import KnowledgeDocument

pytestmark = pytest.mark.django_db


def _post_batch(client, tutor, template_id, paths, **fields):
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(path, "rb")) for path in paths]
        return client.post(
            "/api/avatars/batch",
            {"template_id": template_id, "tutor_id": tutor.pk, "prompt_face": files, **fields},
            format="multipart",
        )


@pytest.fixture
def coach():
    return AvatarTemplate.objects.get(name="Exam coach")


def test_a_batch_with_good_and_bad_files(api, tutor, videos, coach, queued, published_catalogues):
    files = [videos / "Ada Lovelace.mp4", videos / "broken.mp4", videos / "coffee.mp4", videos / "bob.mp4"]

    response = _post_batch(api, tutor, coach.pk, files)

    assert response.status_code == 202, response.content
    body = response.json()
    items = {item["name"]: item for item in body["items"]}
    assert list(items) == ["Ada_Lovelace", "broken", "coffee", "bob"]  # from the file names, in order
    # The bad file fails its item with the reason; the rest go on.
    assert items["broken"]["status"] == "failed" and items["broken"]["avatar_id"] is None
    assert "could not be read" in items["broken"]["detail"]
    for name in ("Ada_Lovelace", "coffee", "bob"):
        assert items[name]["status"] == "processing" and items[name]["avatar_id"], items[name]
        avatar = Avatar.objects.get(pk=items[name]["avatar_id"])
        assert avatar.tutor == tutor and avatar.persona == coach.persona
        assert KnowledgeDocument.objects.filter(avatar=avatar).count() == 1

    # Items reflect their avatars' processing.
    coffee, bob = (Avatar.objects.get(pk=items[name]["avatar_id"]) for name in ("coffee", "bob"))
    services.avatar_preprocess_failed(coffee.pk, coffee.task_id, "No face found in the video.")
    services.avatar_preprocess_succeeded(
        bob.pk, bob.task_id, assets_path="a", preview_image_path="p.png", frame_count=50, width=8, height=8
    )
    later = api.get(f"/api/avatars/batches/{body['batch_id']}")
    assert later.status_code == 200
    statuses = {item["name"]: (item["status"], item["detail"]) for item in later.json()["items"]}
    assert statuses == {
        "Ada_Lovelace": ("processing", ""),
        "broken": (statuses["broken"][0], statuses["broken"][1]),
        "coffee": ("error", "No face found in the video."),
        "bob": ("ready", ""),
    }
    assert statuses["broken"][0] == "failed"
    Avatar.objects.filter(pk=bob.pk).delete()
    assert api.get(f"/api/avatars/batches/{body['batch_id']}").json()["items"][3]["status"] == "deleted"


def test_names_given_and_made_unique(api, tutor, videos, coach, queued, published_catalogues, settings):
    settings.AVATAR_MAX_PROCESSING_PER_ADMIN = 20
    Avatar.objects.create(tutor=tutor, name="bob", status=AvatarStatus.INACTIVE)
    two = [videos / "bob.mp4", videos / "bob.mp4"]
    response = _post_batch(api, tutor, coach.pk, two)
    assert [item["name"] for item in response.json()["items"]] == ["bob_2", "bob_3"]

    response = _post_batch(api, tutor, coach.pk, two, names="kim, lee")
    assert [(i["name"], i["status"]) for i in response.json()["items"]] == [
        ("kim", "processing"),
        ("lee", "processing"),
    ]

    # A name of its own that is taken or invalid fails its item only.
    response = _post_batch(api, tutor, coach.pk, two, names=["kim", "no good!"])
    assert [i["status"] for i in response.json()["items"]] == ["failed", "failed"]
    assert "already exists" in response.json()["items"][0]["detail"]
    assert "letters, digits" in response.json()["items"][1]["detail"]

    response = _post_batch(api, tutor, coach.pk, two, names="just_one")
    assert response.status_code == 400 and response.json()["field"] == "names"
    response = api.post("/api/avatars/batch", {"template_id": coach.pk, "tutor_id": tutor.pk}, format="multipart")
    assert response.status_code == 400 and response.json()["field"] == "prompt_face"


def test_limits_apply_per_item(api, tutor, videos, coach, queued, published_catalogues, settings):
    tutor.max_avatars = 2
    tutor.save()
    files = [videos / "bob.mp4"] * 3
    items = _post_batch(api, tutor, coach.pk, files).json()["items"]
    assert [item["status"] for item in items] == ["processing", "processing", "failed"]
    assert "max_avatars" in items[2]["detail"]

    tutor.max_avatars = None
    tutor.save()
    settings.AVATAR_MAX_PROCESSING_PER_ADMIN = 3  # two are processing already
    items = _post_batch(api, tutor, coach.pk, files).json()["items"]
    assert [item["status"] for item in items] == ["processing", "failed", "failed"]
    assert "AVATAR_MAX_PROCESSING_PER_ADMIN" in items[1]["detail"]


def test_batches_are_scoped_like_avatars(api, other_api, tutor_api, tutor, videos, coach, queued, published_catalogues):
    batch = _post_batch(api, tutor, coach.pk, [videos / "bob.mp4"]).json()
    assert tutor_api.get(f"/api/avatars/batches/{batch['batch_id']}").status_code == 200
    response = other_api.get(f"/api/avatars/batches/{batch['batch_id']}")
    assert response.status_code == 404 and "bob" not in response.content.decode()

    # Another admin can use neither the tutor nor a template of this admin's.
    response = _post_batch(other_api, tutor, coach.pk, [videos / "bob.mp4"])
    assert response.status_code == 404 and response.json()["field"] == "tutor_id"
    mine = api.post("/api/avatar-templates/", {"name": "Mine"}, format="json").json()
    response = _post_batch(other_api, tutor, mine["id"], [videos / "bob.mp4"])
    assert response.status_code == 404 and response.json()["field"] == "template_id"
    assert AvatarBatch.objects.count() == 1

    # The tutor's own login makes batches for its tutor.
    response = _post_batch(tutor_api, tutor, mine["id"], [videos / "Ada Lovelace.mp4"])
    assert response.status_code == 202 and response.json()["items"][0]["status"] == "processing"


def test_the_admin_create_from_template_page(client, admin_user, tutor, videos, coach, queued, published_catalogues):
    from tests.conftest import PASSWORD

    client.login(username=admin_user.email, password=PASSWORD)
    assert b"Create from template" in client.get("/admin/avatars/avatar/").content
    page = client.get("/admin/avatar_templates/avatarbatch/add/")
    assert page.status_code == 200 and b"Create avatars from a template" in page.content
    assert b"Exam coach" in page.content and b"multiple" in page.content
    with open(videos / "bob.mp4", "rb") as good, open(videos / "broken.mp4", "rb") as bad:
        response = client.post(
            "/admin/avatar_templates/avatarbatch/add/",
            {"template": coach.pk, "tutor": tutor.pk, "prompt_face": [good, bad], "names": ""},
            follow=True,
        )
    assert response.status_code == 200, response.content
    text = response.content.decode()
    assert "1 avatar(s) created from &#x27;Exam coach&#x27;" in text or "1 avatar(s) created from 'Exam coach'" in text
    assert "Refused:" in text and "could not be read" in text
    assert 'data-avatar-progress="' in text and 'data-processing="1"' in text  # followed live
    assert Avatar.objects.filter(name="bob", persona=coach.persona).exists()


def test_the_web_server_lets_a_batch_and_a_template_voice_through(settings):
    from tutor_site.web_server import body_limit

    mb = 1024 * 1024
    settings.AVATAR_MAX_UPLOAD_MB, settings.AVATAR_BATCH_MAX_FILES, settings.REQUEST_MAX_BODY_MB = 10, 5, 2
    assert body_limit(b"/api/avatars/batch") == 51 * mb
    assert body_limit(b"/admin/avatar_templates/avatarbatch/add/") == 51 * mb
    for path in (b"/api/avatar-templates/", b"/api/avatar-templates/7"):
        assert body_limit(path) > 10 * mb
    assert body_limit(b"/api/avatars/batches/3") == 2 * mb
