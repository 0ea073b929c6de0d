"""Tenancy in the Django admin: an admin sees and touches only its own tutors and avatars;
superusers (operators) see everything. Plain Django test client, no worker needed: the
avatars are inserted as rows (no upload, nothing is enqueued)."""
import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from avatars.models import Avatar, AvatarStatus
from tutors.models import Tutor
from tutors.services import tutor_create

pytestmark = [pytest.mark.django_db]

AVATARS = reverse("admin:avatars_avatar_changelist")
TUTORS = reverse("admin:tutors_tutor_changelist")


def _avatar(tutor, name, status=AvatarStatus.INACTIVE, **extra):
    return Avatar.objects.create(tutor=tutor, name=name, display_name=name.title(), status=status,
                                 video_path=f"avatars/{name}/source/video.mp4", task_id=f"task-{name}", **extra)


@pytest.fixture
def world(admin_user, other_admin):
    mine = tutor_create(owner=admin_user, name="Ms Ada", description="Maths")
    theirs = tutor_create(owner=other_admin, name="Mr Secret Bob", description="Physics")
    return {
        "mine": mine,
        "theirs": theirs,
        "my_avatar": _avatar(mine, "ada_v1"),
        "their_avatar": _avatar(theirs, "bob_secret_avatar"),
    }


def _not_found(response, client):
    """Django admin answers a missing object with a redirect to the index and a message
    ("… doesn't exist. Perhaps it was deleted?"), the same for another admin's object."""
    if response.status_code == 404:
        return True
    assert response.status_code == 302, response.status_code
    assert response.url == reverse("admin:index")
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    return any("doesn’t exist" in t or "doesn't exist" in t for t in texts)


def test_admin_lists_only_its_own_tutors_and_avatars(client, admin_user, world):
    client.force_login(admin_user)

    page = client.get(AVATARS)
    assert page.status_code == 200
    html = page.content.decode()
    assert "ada_v1" in html
    assert "bob_secret_avatar" not in html
    assert list(page.context["cl"].result_list) == [world["my_avatar"]]

    page = client.get(TUTORS)
    assert page.status_code == 200
    assert list(page.context["cl"].result_list) == [world["mine"]]
    assert "Mr Secret Bob" not in page.content.decode()

    # Searching by the other tutor's name finds nothing either.
    page = client.get(AVATARS, {"q": "Secret"})
    assert list(page.context["cl"].result_list) == []


def test_the_tutor_filter_does_not_leak_other_admins_tutor_names(client, admin_user, world):
    client.force_login(admin_user)
    html = client.get(AVATARS).content.decode()
    assert "Ms Ada" in html
    assert "Mr Secret Bob" not in html
    # Asking the filter for the other admin's tutor shows nothing of theirs.
    page = client.get(AVATARS, {"tutor__id__exact": world["theirs"].pk})
    assert "bob_secret_avatar" not in page.content.decode()
    assert "Mr Secret Bob" not in page.content.decode()


def test_another_admins_objects_are_not_found(client, admin_user, world):
    client.force_login(admin_user)
    their_avatar, theirs = world["their_avatar"], world["theirs"]
    for url in (
        reverse("admin:avatars_avatar_change", args=[their_avatar.pk]),
        reverse("admin:avatars_avatar_delete", args=[their_avatar.pk]),
        reverse("admin:avatars_avatar_history", args=[their_avatar.pk]),
        reverse("admin:tutors_tutor_change", args=[theirs.pk]),
        reverse("admin:tutors_tutor_delete", args=[theirs.pk]),
    ):
        response = client.get(url)
        assert _not_found(response, client), url
        assert b"bob_secret_avatar" not in response.content and b"Mr Secret Bob" not in response.content

    # The answer is the same as for an id that does not exist at all.
    missing = client.get(reverse("admin:avatars_avatar_change", args=[10**6]))
    assert _not_found(missing, client)

    # Posting to them changes nothing.
    client.post(reverse("admin:avatars_avatar_change", args=[their_avatar.pk]),
                {"display_name": "hacked", "description": "", "timbre": ""})
    client.post(reverse("admin:avatars_avatar_delete", args=[their_avatar.pk]), {"post": "yes"})
    their_avatar.refresh_from_db()
    assert their_avatar.display_name == "Bob_Secret_Avatar"

    # Actions only apply to objects in the admin's own list.
    client.post(AVATARS, {"action": "delete_selected", "_selected_action": [their_avatar.pk], "post": "yes"})
    client.post(TUTORS, {"action": "delete_selected", "_selected_action": [theirs.pk], "post": "yes"})
    assert Avatar.objects.filter(pk=their_avatar.pk).exists()
    assert Tutor.objects.filter(pk=theirs.pk).exists()


def test_the_add_form_offers_only_own_tutors_and_refuses_another(client, admin_user, world, tmp_path):
    client.force_login(admin_user)
    page = client.get(reverse("admin:avatars_avatar_add"))
    assert page.status_code == 200
    choices = list(page.context["adminform"].form.fields["tutor"].queryset)
    assert choices == [world["mine"]]
    assert "Mr Secret Bob" not in page.content.decode()
    # The only tutor is preselected.
    assert page.context["adminform"].form.initial.get("tutor") == world["mine"].pk

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not really a video")
    with open(video, "rb") as fh:
        response = client.post(reverse("admin:avatars_avatar_add"),
                               {"tutor": world["theirs"].pk, "name": "sneaky", "prompt_face": fh})
    assert response.status_code == 200
    assert "tutor" in response.context["adminform"].form.errors
    assert not Avatar.objects.filter(name="sneaky").exists()


def test_superuser_sees_everything(client, operator, world):
    client.force_login(operator)
    page = client.get(AVATARS)
    assert set(page.context["cl"].result_list) == {world["my_avatar"], world["their_avatar"]}
    html = page.content.decode()
    assert "Ms Ada" in html and "Mr Secret Bob" in html  # both tutors in the filter

    page = client.get(TUTORS)
    assert set(page.context["cl"].result_list) == {world["mine"], world["theirs"]}
    assert client.get(reverse("admin:avatars_avatar_change", args=[world["their_avatar"].pk])).status_code == 200
    assert client.get(reverse("admin:tutors_tutor_change", args=[world["theirs"].pk])).status_code == 200


def test_admin_tutor_add_sets_the_owner_to_the_admin(client, admin_user, other_admin, world):
    client.force_login(admin_user)
    page = client.get(reverse("admin:tutors_tutor_add"))
    assert "owner" not in page.context["adminform"].form.fields
    # An owner smuggled into the POST is ignored.
    response = client.post(reverse("admin:tutors_tutor_add"),
                           {"name": "Mx New", "description": "Art", "owner": other_admin.pk})
    assert response.status_code == 302
    assert Tutor.objects.get(name="Mx New").owner == admin_user


def test_bad_video_shows_the_services_reason_on_the_add_form(client, admin_user, world, tmp_path):
    client.force_login(admin_user)
    video = tmp_path / "lesson.mp4"
    video.write_bytes(b"this is not a video" * 50)
    with open(video, "rb") as fh:
        response = client.post(reverse("admin:avatars_avatar_add"),
                               {"tutor": world["mine"].pk, "name": "ada_bad", "prompt_face": fh})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "could not be read" in " ".join(errors["prompt_face"])
    assert not Avatar.objects.filter(name="ada_bad").exists()

    # A taken name is reported on the name field.
    with open(video, "rb") as fh:
        response = client.post(reverse("admin:avatars_avatar_add"),
                               {"tutor": world["mine"].pk, "name": "ada_v1", "prompt_face": fh})
    assert "already exists" in " ".join(response.context["adminform"].form.errors["name"])


def test_reprocess_and_delete_actions_go_through_the_services(client, admin_user, world, monkeypatch):
    from avatars import services

    enqueued = []
    monkeypatch.setattr(services, "_enqueue_preprocess", lambda avatar: enqueued.append(avatar.pk))
    client.force_login(admin_user)
    mine = world["my_avatar"]
    busy = _avatar(world["mine"], "ada_busy", status=AvatarStatus.PROCESSING)

    response = client.post(AVATARS, {"action": "reprocess", "_selected_action": [mine.pk, busy.pk]}, follow=True)
    texts = [str(m) for m in response.context["messages"]]
    assert "Reprocessing 1 avatar(s)." in texts
    assert any("already being processed" in t for t in texts)
    mine.refresh_from_db()
    assert mine.status == AvatarStatus.PROCESSING and enqueued == [mine.pk]

    deleted = []
    monkeypatch.setattr(services, "avatar_delete", lambda avatar: (deleted.append(avatar.pk), avatar.delete()))
    # Django's delete action asks first ...
    response = client.post(AVATARS, {"action": "delete_selected", "_selected_action": [busy.pk]})
    assert response.status_code == 200 and b"Are you sure" in response.content
    assert Avatar.objects.filter(pk=busy.pk).exists()
    # ... and then deletes through the service.
    response = client.post(AVATARS, {"action": "delete_selected", "_selected_action": [busy.pk], "post": "yes"})
    assert response.status_code == 302
    assert deleted == [busy.pk]
    assert not Avatar.objects.filter(pk=busy.pk).exists()


def test_error_avatar_shows_its_reason(client, admin_user, world):
    reason = "No face was found in most of the video; upload one where the tutor faces the camera."
    broken = _avatar(world["mine"], "ada_broken", status=AvatarStatus.ERROR, error_message=reason)
    client.force_login(admin_user)
    html = client.get(AVATARS).content.decode()
    assert reason in html
    html = client.get(reverse("admin:avatars_avatar_change", args=[broken.pk])).content.decode()
    assert reason in html
    assert f'data-avatar-status="{broken.pk}"' in html


def test_tutor_edit_and_delete_go_through_the_services(client, admin_user, world, monkeypatch):
    from tutors import admin as tutors_admin

    client.force_login(admin_user)
    mine = world["mine"]
    response = client.post(reverse("admin:tutors_tutor_change", args=[mine.pk]),
                           {"name": "Ms Ada Lovelace", "description": "Maths"})
    assert response.status_code == 302
    mine.refresh_from_db()
    assert mine.name == "Ms Ada Lovelace" and mine.owner == admin_user

    # The list links each tutor's avatar count to its avatars.
    html = client.get(TUTORS).content.decode()
    assert f"?tutor__id__exact={mine.pk}" in html

    deleted = []
    real = tutors_admin.tutor_delete
    monkeypatch.setattr(tutors_admin, "tutor_delete", lambda tutor: (deleted.append(tutor.pk), real(tutor)))
    confirm = client.post(TUTORS, {"action": "delete_selected", "_selected_action": [mine.pk]})
    assert b"Are you sure" in confirm.content and b"Ada_V1" in confirm.content  # its avatars go too
    client.post(TUTORS, {"action": "delete_selected", "_selected_action": [mine.pk], "post": "yes"})
    assert deleted == [mine.pk]
    assert not Tutor.objects.filter(pk=mine.pk).exists()
    assert not Avatar.objects.filter(name="ada_v1").exists()
    assert Avatar.objects.filter(name="bob_secret_avatar").exists()
