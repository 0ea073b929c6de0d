"""The admin's template pages and the avatar add form's template select."""

from __future__ import annotations

import pytest

from avatar_templates.models import AvatarTemplate
from avatars.models import Avatar
from conversations.models import KnowledgeDocument
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, admin_user):
    client.login(username=admin_user.email, password=PASSWORD)
    return client


def test_templates_in_the_admin(signed_in, other_admin):
    AvatarTemplate.objects.create(owner=other_admin, name="Bob's secret")
    listing = signed_in.get("/admin/avatar_templates/avatartemplate/").content.decode()
    assert "Exam coach" in listing and "Bob's secret" not in listing

    response = signed_in.post(
        "/admin/avatar_templates/avatartemplate/add/",
        {
            "name": "Chemistry",
            "persona": "A chemist.",
            "documents": "# Atoms\nAtoms have a nucleus.\n---\nBonds join atoms.",
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    made = AvatarTemplate.objects.get(name="Chemistry")
    assert [(d.title, d.text) for d in made.documents.all()] == [
        ("Atoms", "Atoms have a nucleus."),
        ("", "Bonds join atoms."),
    ]
    # A bad value shows on its field with the API's message.
    response = signed_in.post("/admin/avatar_templates/avatartemplate/add/", {"name": "Bad", "tts_model": "nope"})
    assert response.status_code == 200 and "Unknown tts_model" in response.content.decode()

    # A global template opens read-only for an admin; another admin's is not found.
    shipped = AvatarTemplate.objects.get(name="Exam coach")
    page = signed_in.get(f"/admin/avatar_templates/avatartemplate/{shipped.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    theirs = AvatarTemplate.objects.get(name="Bob's secret")
    assert signed_in.get(f"/admin/avatar_templates/avatartemplate/{theirs.pk}/change/").status_code == 302


def test_the_avatar_add_form_starts_from_a_template(signed_in, tutor, face_video, queued, published_catalogues):
    coach = AvatarTemplate.objects.get(name="Exam coach")
    page = signed_in.get("/admin/avatars/avatar/add/").content.decode()
    assert "Exam coach" in page and 'name="template"' in page
    with open(face_video, "rb") as fh:
        response = signed_in.post(
            "/admin/avatars/avatar/add/",
            {"tutor": tutor.pk, "template": coach.pk, "name": "coached", "prompt_face": fh, "greeting": "Mine."},
        )
    assert response.status_code == 302, response.content.decode()[-3000:]
    avatar = Avatar.objects.get(name="coached")
    assert avatar.greeting == "Mine." and avatar.persona == coach.persona
    assert KnowledgeDocument.objects.filter(avatar=avatar).count() == 1
