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
    return Avatar.objects.create(
        tutor=tutor,
        name=name,
        display_name=name.title(),
        status=status,
        video_path=f"avatars/{name}/source/video.mp4",
        task_id=f"task-{name}",
        **extra,
    )


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
    client.post(
        reverse("admin:avatars_avatar_change", args=[their_avatar.pk]),
        {"display_name": "hacked", "description": "", "timbre": ""},
    )
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
        response = client.post(
            reverse("admin:avatars_avatar_add"), {"tutor": world["theirs"].pk, "name": "sneaky", "prompt_face": fh}
        )
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
    response = client.post(
        reverse("admin:tutors_tutor_add"), {"name": "Mx New", "description": "Art", "owner": other_admin.pk}
    )
    assert response.status_code == 302
    assert Tutor.objects.get(name="Mx New").owner == admin_user


def test_bad_video_shows_the_services_reason_on_the_add_form(client, admin_user, world, tmp_path):
    client.force_login(admin_user)
    video = tmp_path / "lesson.mp4"
    video.write_bytes(b"this is not a video" * 50)
    with open(video, "rb") as fh:
        response = client.post(
            reverse("admin:avatars_avatar_add"), {"tutor": world["mine"].pk, "name": "ada_bad", "prompt_face": fh}
        )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "could not be read" in " ".join(errors["prompt_face"])
    assert not Avatar.objects.filter(name="ada_bad").exists()

    # A taken name is reported on the name field.
    with open(video, "rb") as fh:
        response = client.post(
            reverse("admin:avatars_avatar_add"), {"tutor": world["mine"].pk, "name": "ada_v1", "prompt_face": fh}
        )
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
    response = client.post(
        reverse("admin:tutors_tutor_change", args=[mine.pk]), {"name": "Ms Ada Lovelace", "description": "Maths"}
    )
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


# --- reads through the selectors, writes through the services at save time ----------------


def test_admin_pages_read_through_the_selectors(client, admin_user, world, monkeypatch):
    from avatars import admin as avatars_admin
    from tutors import admin as tutors_admin

    assert not hasattr(tutors_admin, "OwnedByAdminMixin")  # tenancy is the selectors' alone
    client.force_login(admin_user)
    # What the selectors answer is what the admin shows: here, nothing.
    monkeypatch.setattr(avatars_admin, "avatar_queryset_for", lambda user: Avatar.objects.none())
    monkeypatch.setattr(
        avatars_admin, "avatar_get", lambda user, pk: (_ for _ in ()).throw(avatars_admin.ServiceError("not found"))
    )
    monkeypatch.setattr(tutors_admin, "tutor_queryset_for", lambda user: Tutor.objects.none())
    monkeypatch.setattr(avatars_admin, "tutor_queryset_for", lambda user: Tutor.objects.none())
    assert list(client.get(AVATARS).context["cl"].result_list) == []
    assert list(client.get(TUTORS).context["cl"].result_list) == []
    assert _not_found(client.get(reverse("admin:avatars_avatar_change", args=[world["my_avatar"].pk])), client)
    page = client.get(reverse("admin:avatars_avatar_add"))
    assert list(page.context["adminform"].form.fields["tutor"].queryset) == []


def _add(client, world, video, **fields):
    with open(video, "rb") as fh:
        return client.post(
            reverse("admin:avatars_avatar_add"),
            {"tutor": world["mine"].pk, "name": "ada_new", "prompt_face": fh, **fields},
        )


def test_add_form_validates_like_the_api_and_saves_through_the_service(
    client, admin_user, world, face_video, monkeypatch
):
    from avatars import services

    calls = []
    real_create = services.avatar_create
    monkeypatch.setattr(services, "_enqueue_preprocess", lambda avatar: None)
    monkeypatch.setattr(services, "avatar_create", lambda **kw: calls.append(kw) or real_create(**kw))
    client.force_login(admin_user)

    # The API's messages, on the fields; validating writes nothing.
    response = _add(client, world, face_video, name="bad name!", display_name="x" * 121, avatar_model="sora")
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["name"] == ["Use only letters, digits, '_' and '-' in an avatar name."]
    assert errors["display_name"] == ["display_name has at most 120 characters."]
    assert "Unknown avatar_model 'sora'" in errors["avatar_model"][0]
    response = _add(client, world, face_video, name="")
    assert response.context["adminform"].form.errors["name"] == [
        "An avatar needs a name (letters, digits, '_' and '-')."
    ]
    response = _add(client, world, face_video, support_clone="on")
    assert "Voice cloning needs a prompt_voice recording." in response.context["adminform"].form.errors["prompt_voice"]
    response = client.post(reverse("admin:avatars_avatar_add"), {"tutor": world["mine"].pk, "name": "no_video"})
    assert response.context["adminform"].form.errors["prompt_face"] == ["prompt_face (the tutor's video) is required."]
    assert calls == [] and not Avatar.objects.filter(name__in=["ada_new", "no_video"]).exists()

    # A good form: the service runs once, at save time, with typed values.
    response = _add(client, world, face_video, display_name="Ada (new)", avatar_blur="on")
    assert response.status_code == 302, response.context["adminform"].form.errors
    [kwargs] = calls
    assert kwargs["tutor_id"] == world["mine"].pk and kwargs["name"] == "ada_new"
    assert kwargs["avatar_blur"] is True and kwargs["support_clone"] is False
    assert kwargs["prompt_face"].filename == face_video.name
    created = Avatar.objects.get(name="ada_new")
    assert created.display_name == "Ada (new)" and created.avatar_blur and created.status == "processing"
    from django.contrib.admin.models import LogEntry

    assert LogEntry.objects.get(object_id=str(created.pk)).object_repr == "Ada (new)"


def test_a_service_error_at_save_time_shows_on_the_form(client, admin_user, world, face_video, monkeypatch):
    from avatars import services
    from tutor_site.exceptions import NameTaken

    def taken_meanwhile(**kwargs):
        raise NameTaken("An avatar named 'ada_new' already exists; choose another name.", field="name")

    monkeypatch.setattr(services, "avatar_create", taken_meanwhile)
    client.force_login(admin_user)
    response = _add(client, world, face_video)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["name"] == [
        "An avatar named 'ada_new' already exists; choose another name."
    ]
    assert not Avatar.objects.filter(name="ada_new").exists()


def test_change_form_validates_then_updates_through_the_service(client, admin_user, world, monkeypatch):
    from avatars import services

    calls = []
    real_update = services.avatar_update
    monkeypatch.setattr(services, "avatar_update", lambda avatar, **kw: calls.append(kw) or real_update(avatar, **kw))
    client.force_login(admin_user)
    mine = world["my_avatar"]
    url = reverse("admin:avatars_avatar_change", args=[mine.pk])

    response = client.post(url, {"display_name": "y" * 121, "description": "", "timbre": ""})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["display_name"] == ["display_name has at most 120 characters."]
    assert calls == []
    mine.refresh_from_db()
    assert mine.display_name == "Ada_V1"

    response = client.post(
        url, {"display_name": "Ada, first take", "description": "Maths", "timbre": "", "avatar_blur": "on"}
    )
    assert response.status_code == 302
    # The conversation fields travel too, as the form shows them (blank: the defaults).
    assert calls == [
        {
            "display_name": "Ada, first take",
            "description": "Maths",
            "avatar_blur": True,
            "language": "en",
            "asr_model": "",
            "llm_model": "",
        }
    ]
    mine.refresh_from_db()
    assert (mine.display_name, mine.description, mine.avatar_blur) == ("Ada, first take", "Maths", True)


def test_tutor_form_validates_and_shows_save_time_errors(client, admin_user, world, monkeypatch):
    from tutor_site.exceptions import InvalidInput
    from tutors import admin as tutors_admin

    client.force_login(admin_user)
    response = client.post(reverse("admin:tutors_tutor_add"), {"name": "   ", "description": ""})
    assert response.status_code == 200 and "name" in response.context["adminform"].form.errors
    response = client.post(reverse("admin:tutors_tutor_add"), {"name": "x" * 121, "description": ""})
    assert response.status_code == 200 and "name" in response.context["adminform"].form.errors

    def refuse(**kwargs):
        raise InvalidInput("A tutor called that is not allowed here.", field="name")

    monkeypatch.setattr(tutors_admin, "tutor_create", refuse)
    response = client.post(reverse("admin:tutors_tutor_add"), {"name": "Mx Later", "description": ""})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["name"] == ["A tutor called that is not allowed here."]
    assert not Tutor.objects.filter(name="Mx Later").exists()


# --- live start / stop from the admin: queued, answered at once --------------------------------


def test_start_action_queues_and_the_list_follows_the_start(client, admin_user, world, monkeypatch):
    from avatars import live_services
    from tests.avatars.live_fakes import fake_queue_install

    queue = fake_queue_install(monkeypatch)
    ready = _avatar(world["mine"], "ada_ready", assets_path="avatars/x/assets/1")
    busy = _avatar(world["mine"], "ada_busy", status=AvatarStatus.PROCESSING)
    client.force_login(admin_user)

    response = client.post(AVATARS, {"action": "start_live", "_selected_action": [ready.pk, busy.pk]}, follow=True)
    texts = [str(m) for m in response.context["messages"]]
    assert any(t.startswith("Starting 1 avatar(s) (ada_ready)") for t in texts), texts
    assert any("still being processed" in t for t in texts), texts
    assert [s["args"][0] for s in queue.sent] == [ready.pk]  # queued, not waited for

    # The list shows it starting (admin_progress.js follows such rows on the events socket) ...
    html = response.content.decode()
    assert f'data-avatar-status="{ready.pk}" data-starting="1">Starting…' in html
    change = client.get(reverse("admin:avatars_avatar_change", args=[ready.pk])).content.decode()
    assert 'data-avatar-live="start"' in change and "disabled>Starting…" in change
    # ... until the worker reports: here, a failure with its reason.
    live_services.avatar_live_start_failed(ready.pk, "No lip-sync engine could load it.")
    html = client.get(AVATARS).content.decode()
    assert f'data-avatar-status="{ready.pk}" data-starting="0">Ready' in html
    assert "Start failed: No lip-sync engine could load it." in html


def test_stop_action_tells_the_worker_without_waiting(client, admin_user, world, monkeypatch):
    from avatars import live_services

    serving = _avatar(
        world["mine"],
        "ada_live",
        status=AvatarStatus.ACTIVE,
        assets_path="a/b",
        serving_worker="w1",
        serving_channel="chan-1",
    )
    monkeypatch.setattr(live_services.registry, "worker_alive", lambda channel: channel == "chan-1")

    def no_waiting(*args, **kwargs):
        raise AssertionError("the admin's stop must not wait for the worker")

    told = []
    monkeypatch.setattr(live_services, "live_request", no_waiting)
    monkeypatch.setattr(live_services, "live_send", lambda channel, message: told.append((channel, message)))
    client.force_login(admin_user)
    response = client.post(AVATARS, {"action": "stop_live", "_selected_action": [serving.pk]}, follow=True)
    assert "Stopped 1 avatar(s)." in [str(m) for m in response.context["messages"]]
    assert told == [("chan-1", {"type": "live.stop_avatar", "avatar_id": serving.pk})]
    serving.refresh_from_db()
    assert serving.status == AvatarStatus.INACTIVE and not serving.serving_channel
