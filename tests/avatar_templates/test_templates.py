"""Templates: the shipped ones, scoping by role, and an avatar's create from a template
(explicit fields win, knowledge copied, later template edits change no avatar)."""

from __future__ import annotations

import pytest

from avatar_templates.models import AvatarTemplate
from avatars.models import Avatar
from conversations.models import KnowledgeDocument
from tests.avatar_templates.conftest import template_payload

pytestmark = pytest.mark.django_db

SHIPPED = {"Patient maths tutor", "Language conversation partner", "Exam coach"}


def _names(client) -> set[str]:
    response = client.get("/api/avatar-templates/")
    assert response.status_code == 200, response.content
    return {row["name"] for row in response.json()}


def _create_template(client, **fields) -> dict:
    response = client.post("/api/avatar-templates/", template_payload(**fields), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_the_shipped_templates_are_there_on_a_fresh_database(api):
    shipped = AvatarTemplate.objects.filter(owner=None)
    assert set(shipped.values_list("name", flat=True)) == SHIPPED
    rows = {row["name"]: row for row in api.get("/api/avatar-templates/").json()}
    for name in SHIPPED:
        row = rows[name]
        assert row["is_global"] is True and row["owner_id"] is None
        assert row["persona"] and row["greeting"] and row["language"] == "en"
        assert row["tts_model"] == "piper" and row["avatar_model"] == "viseme" and row["llm_model"] == "knowledge"
        assert len(row["documents"]) == 1 and row["documents"][0]["text"]


def test_templates_are_scoped_like_tutors(api, other_api, tutor_api, operator_api):
    mine = _create_template(api)
    assert mine["is_global"] is False and mine["documents"][1]["title"] == "Energy"

    # The admin and its tutor's account see it, with the global ones; another admin does not.
    assert _names(api) == SHIPPED | {"Calm physics"}
    assert _names(tutor_api) == SHIPPED | {"Calm physics"}
    assert _names(other_api) == SHIPPED
    assert tutor_api.get(f"/api/avatar-templates/{mine['id']}").status_code == 200
    for method in ("get", "patch", "delete"):
        response = getattr(other_api, method)(f"/api/avatar-templates/{mine['id']}", {}, format="json")
        assert response.status_code == 404, (method, response.content)
        assert "Calm" not in response.content.decode()

    # A tutor account reads, never writes.
    response = tutor_api.patch(f"/api/avatar-templates/{mine['id']}", {"greeting": "Hi"}, format="json")
    assert response.status_code == 403 and "tutor account" in response.json()["detail"]
    assert tutor_api.post("/api/avatar-templates/", template_payload(name="X"), format="json").status_code == 403

    # Global templates: every admin sees them, only operators change them.
    shipped = AvatarTemplate.objects.get(name="Exam coach")
    response = api.patch(f"/api/avatar-templates/{shipped.pk}", {"greeting": "Hi"}, format="json")
    assert response.status_code == 403 and "only operators" in response.json()["detail"]
    assert api.delete(f"/api/avatar-templates/{shipped.pk}").status_code == 403
    response = operator_api.patch(f"/api/avatar-templates/{shipped.pk}", {"greeting": "Good luck!"}, format="json")
    assert response.status_code == 200 and response.json()["greeting"] == "Good luck!"

    # An operator's own template is global too.
    made = _create_template(operator_api, name="Operator's pick")
    assert made["is_global"] is True
    assert "Operator's pick" in _names(other_api) and "Operator's pick" in _names(tutor_api)
    # And the operator sees the admin's.
    assert "Calm physics" in _names(operator_api)


def test_template_input_is_validated_with_clear_messages(api):
    _create_template(api)
    response = api.post("/api/avatar-templates/", template_payload(), format="json")
    assert response.status_code == 409 and "already exists" in response.json()["detail"]
    response = api.post("/api/avatar-templates/", template_payload(name="Y", tts_model="nope"), format="json")
    assert response.status_code == 400 and response.json()["field"] == "tts_model"
    response = api.post("/api/avatar-templates/", template_payload(name="Y", documents=[{"title": "t"}]), format="json")
    assert response.status_code == 400 and "needs a text" in response.json()["detail"]
    response = api.post("/api/avatar-templates/", template_payload(name="Y", support_clone=True), format="json")
    assert response.status_code == 400 and response.json()["field"] == "voice"
    response = api.post("/api/avatar-templates/", {**template_payload(name="Y"), "colour": "red"}, format="json")
    assert response.status_code == 400 and "Unknown fields: colour" in response.json()["detail"]
    # Another admin may use the same name: names are per owner.
    assert AvatarTemplate.objects.filter(name="Calm physics").count() == 1


def _create_avatar(api, tutor, video, **fields):
    with open(video, "rb") as fh:
        return api.post(
            "/api/avatars/create", {"tutor_id": tutor.pk, "name": "from_tpl", "prompt_face": fh, **fields},
            format="multipart",
        )  # fmt: skip


def test_an_avatar_starts_from_a_template_and_keeps_its_copy(api, tutor, face_video, queued, published_catalogues):
    template = _create_template(api)

    response = _create_avatar(api, tutor, face_video, template_id=template["id"], greeting="Mine!", avatar_blur="no")

    assert response.status_code == 201, response.content
    body = response.json()
    # Given fields win (even false); the template fills the rest.
    assert body["greeting"] == "Mine!" and body["avatar_blur"] is False
    assert body["persona"] == "You are a calm physics tutor." and body["language"] == "fr"
    assert body["timbre"] == "joe" and body["tts_model"] == "piper"
    avatar = Avatar.objects.get(pk=body["id"])
    copied = {doc.title: doc for doc in KnowledgeDocument.objects.filter(avatar=avatar)}
    assert set(copied) == {"Newton", "Energy"} and copied["Newton"].chunk_count >= 1
    assert api.get(f"/api/avatars/{avatar.pk}/knowledge").json()["total"] == 2

    # Editing (or deleting) the template later changes no avatar.
    api.patch(
        f"/api/avatar-templates/{template['id']}",
        {"persona": "Changed.", "documents": [{"title": "Other", "text": "Something else entirely."}]},
        format="json",
    )
    avatar.refresh_from_db()
    assert avatar.persona == "You are a calm physics tutor."
    assert set(KnowledgeDocument.objects.filter(avatar=avatar).values_list("title", flat=True)) == {"Newton", "Energy"}
    assert api.delete(f"/api/avatar-templates/{template['id']}").status_code == 200
    assert KnowledgeDocument.objects.filter(avatar=avatar).count() == 2


def test_a_shipped_template_and_its_reference_voice(api, tutor, face_video, voice_wav, queued, published_catalogues):
    shipped = AvatarTemplate.objects.get(name="Patient maths tutor")
    response = _create_avatar(api, tutor, face_video, template_id=shipped.pk)
    assert response.status_code == 201, response.content
    assert response.json()["persona"] == shipped.persona
    assert KnowledgeDocument.objects.filter(avatar_id=response.json()["id"]).count() == 1

    # A template's voice is the avatar's prompt_voice when none is uploaded.
    with open(voice_wav, "rb") as fh:
        payload = {**template_payload(name="Voiced"), "voice": fh}
        payload["documents"] = '[{"title": "Hi", "text": "Hello there."}]'
        voiced = api.post("/api/avatar-templates/", payload, format="multipart")
    assert voiced.status_code == 201, voiced.content
    assert voiced.json()["has_voice"] is True and voiced.json()["documents"] == [
        {"title": "Hi", "text": "Hello there."}
    ]
    with open(face_video, "rb") as fh:
        response = api.post(
            "/api/avatars/create",
            {"tutor_id": tutor.pk, "name": "voiced", "prompt_face": fh, "template_id": voiced.json()["id"]},
            format="multipart",
        )
    assert response.status_code == 201, response.content
    assert response.json()["audio_path"].endswith("/source/voice.wav")


def test_an_unknown_or_foreign_template_is_not_found(api, other_api, tutor, face_video, queued, published_catalogues):
    theirs = _create_template(other_api, name="Bob's")
    for template_id in (theirs["id"], 999999):
        response = _create_avatar(api, tutor, face_video, template_id=template_id)
        assert response.status_code == 404, response.content
        assert response.json()["field"] == "template_id"
        assert f"Template {template_id} not found" in response.json()["detail"]
    response = _create_avatar(api, tutor, face_video, template_id="abc")
    assert response.status_code == 400 and response.json()["field"] == "template_id"
    assert not Avatar.objects.exists()


def test_a_failed_copy_leaves_no_avatar(api, tutor, face_video, queued, published_catalogues, settings):
    template = _create_template(api)
    settings.KNOWLEDGE_MAX_DOCUMENTS = 1  # the second document is refused: the whole create is
    response = _create_avatar(api, tutor, face_video, template_id=template["id"])
    assert response.status_code == 400, response.content
    assert not Avatar.objects.exists() and not KnowledgeDocument.objects.exists()
