"""`create_avatars --template ID`: a folder of videos (or a manifest's rows) from a template."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from avatar_templates.models import AvatarBatch, AvatarTemplate
from avatars.models import Avatar
from conversations.models import KnowledgeDocument

pytestmark = pytest.mark.django_db
ADA = "ada@school.test"


def run(*args):
    out, err = StringIO(), StringIO()
    try:
        call_command("create_avatars", *map(str, args), stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def test_a_folder_from_a_template(admin_user, tutor, videos, queued, published_catalogues, settings):
    settings.AVATAR_MAX_PROCESSING_PER_ADMIN = 10
    coach = AvatarTemplate.objects.get(name="Exam coach")

    out, error = run("--dir", videos, "--tutor", tutor.pk, "--template", coach.pk, "--as", ADA)

    assert error is not None and "1 of 4" in str(error), out  # the corrupt file
    made = {a.name: a for a in Avatar.objects.filter(tutor=tutor)}
    assert set(made) == {"Ada_Lovelace", "bob", "coffee"}
    for avatar in made.values():
        assert avatar.persona == coach.persona and avatar.greeting == coach.greeting
        assert KnowledgeDocument.objects.filter(avatar=avatar).count() == 1
    assert made["Ada_Lovelace"].display_name == "Ada Lovelace"  # given by the folder: it wins
    # Recorded as a batch, as the API's and the admin's are.
    batch = AvatarBatch.objects.get()
    assert f"Batch {batch.pk}" in out
    statuses = {item.name: (item.status, item.detail) for item in batch.items.all()}
    assert statuses["bob"] == ("processing", "") and statuses["broken"][0] == "failed"
    assert "could not be read" in statuses["broken"][1]

    # A dry run checks through the template too, and writes nothing.
    out, error = run("--dir", videos, "--tutor", tutor.pk, "--template", 999999, "--as", ADA, "--dry-run")
    assert error is not None and "Template 999999 not found" in out
    assert AvatarBatch.objects.count() == 1


def test_a_manifest_column_and_a_foreign_template(admin_user, other_admin, tutor, videos, queued, published_catalogues):
    theirs = AvatarTemplate.objects.create(owner=other_admin, name="Bob's")
    maths = AvatarTemplate.objects.get(name="Patient maths tutor")
    manifest = videos / "avatars.csv"
    manifest.write_text(
        "tutor,name,video,template,tts_model\n"
        f"{tutor.pk},maths_one,bob.mp4,{maths.pk},espeak-ng\n"
        f"{tutor.pk},stolen,bob.mp4,{theirs.pk},\n"
    )

    out, error = run(manifest, "--as", ADA)

    assert error is not None
    avatar = Avatar.objects.get(name="maths_one")
    assert avatar.tts_model == "espeak-ng" and avatar.persona == maths.persona  # the row wins
    assert f"Template {theirs.pk} not found" in out
    assert not Avatar.objects.filter(name="stolen").exists()
