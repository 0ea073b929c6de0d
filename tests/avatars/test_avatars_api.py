"""The avatar endpoints of the contract: list, get, patch, delete, reprocess, models."""

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from avatars.models import Avatar

pytestmark = pytest.mark.django_db


def _create(api, tutor, face_video, name):
    response = api.post(
        "/api/avatars/create",
        {"tutor_id": tutor.pk, "name": name, "prompt_face": SimpleUploadedFile("v.mp4", face_video.read_bytes())},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_list_is_newest_first_and_filtered_by_tutor(api, tutor, admin_user, face_video):
    from tutors.services import tutor_create

    second = tutor_create(owner=admin_user, name="Mr Bo")
    _create(api, tutor, face_video, "first")
    _create(api, second, face_video, "second")
    _create(api, tutor, face_video, "third")
    body = api.get("/api/avatars/list").json()
    assert body["total"] == 3
    assert [a["name"] for a in body["avatars"]] == ["third", "second", "first"]
    only = api.get(f"/api/avatars/list?tutor_id={tutor.pk}").json()
    assert [a["name"] for a in only["avatars"]] == ["third", "first"] and only["total"] == 2
    page = api.get("/api/avatars/list?limit=1&offset=1").json()
    assert [a["name"] for a in page["avatars"]] == ["second"] and page["total"] == 3
    assert api.get("/api/avatars/list?limit=lots").status_code == 400


def test_created_avatar_has_every_contract_field(api, tutor, face_video):
    body = _create(api, tutor, face_video, "fields")
    for field in (
        "id",
        "tutor_id",
        "name",
        "display_name",
        "description",
        "avatar_model",
        "tts_model",
        "timbre",
        "avatar_blur",
        "support_clone",
        "status",
        "preview_image_path",
        "video_path",
        "audio_path",
        "engine_url",
        "created_at",
        "updated_at",
        "progress",
        "error_message",
        "task_id",
    ):
        assert field in body, field
    assert body["avatar_model"] == "viseme"  # the first usable engine here: no neural weights installed
    assert body["tts_model"] == "piper"
    assert body["display_name"] == "fields"
    assert set(body["progress"]) == {"stage", "percent", "message"}


def test_patch_changes_editable_fields_only(api, tutor, face_video):
    avatar = _create(api, tutor, face_video, "patchy")
    response = api.patch(f"/api/avatars/{avatar['id']}", {"display_name": "Dr Ada", "avatar_blur": True}, format="json")
    assert response.status_code == 200
    assert response.json()["display_name"] == "Dr Ada" and response.json()["avatar_blur"] is True
    for field, value in (("name", "x"), ("tutor_id", 1), ("video_path", "/etc/passwd"), ("engine_url", "http://x")):
        response = api.patch(f"/api/avatars/{avatar['id']}", {field: value}, format="json")
        assert response.status_code == 400
        assert field in response.json()["detail"]
    # Still processing: it cannot be activated yet.
    response = api.patch(f"/api/avatars/{avatar['id']}", {"status": "active"}, format="json")
    assert response.status_code == 409 and "processing" in response.json()["detail"]
    Avatar.objects.filter(pk=avatar["id"]).update(status="inactive")
    response = api.patch(f"/api/avatars/{avatar['id']}", {"status": "error"}, format="json")
    assert response.status_code == 400


def test_delete_removes_the_avatar_and_its_files(api, tutor, face_video, django_capture_on_commit_callbacks):
    avatar = _create(api, tutor, face_video, "gone")
    assert default_storage.exists(avatar["video_path"])
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/api/avatars/{avatar['id']}")
    assert response.json() == {"status": "success", "message": "Avatar 'gone' deleted successfully"}
    assert not Avatar.objects.filter(pk=avatar["id"]).exists()
    assert not default_storage.exists(avatar["video_path"])
    assert not default_storage.exists(f"avatars/{avatar['id']}")
    assert api.get(f"/api/avatars/{avatar['id']}").status_code == 404


def test_reprocess_requires_a_finished_avatar(api, tutor, face_video):
    avatar = _create(api, tutor, face_video, "again")
    response = api.post(f"/api/avatars/{avatar['id']}/reprocess")
    assert response.status_code == 409 and "already being processed" in response.json()["detail"]
    Avatar.objects.filter(pk=avatar["id"]).update(status="error", error_message="boom")
    response = api.post(f"/api/avatars/{avatar['id']}/reprocess")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "processing" and body["error_message"] == ""
    assert body["task_id"] != avatar["task_id"]


def test_preview_is_a_json_404_before_processing(api, tutor, face_video):
    avatar = _create(api, tutor, face_video, "nopreview")
    response = api.get(f"/api/avatars/{avatar['id']}/preview")
    assert response.status_code == 404
    assert "no preview yet" in response.json()["detail"]


def test_avatar_models_say_which_engines_are_usable_and_why_not(api, published_catalogues):
    models = {m["id"]: m for m in api.get("/api/avatars/avatar-models").json()["models"]}
    assert list(models) == ["MuseTalk", "wav2lip", "ultralight", "viseme"]
    assert models["viseme"]["available"] is True and models["viseme"]["needs_weights"] is False
    for name in ("MuseTalk", "wav2lip"):
        assert models[name]["available"] is False
        assert models[name]["reason"]
