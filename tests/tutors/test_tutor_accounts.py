"""Tutor logins (issue 12): an admin gives a tutor an account (with a password, or a
one-time invite link), the tutor signs in and sees only its own tutor and avatars, and
removing the login refuses its tokens and closes its sockets at once."""

import re

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import Client

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "violet-staple-77"


def _login(client_for, email, password=PASSWORD):
    return client_for(None).post("/api/auth/login", {"username": email, "password": password}, format="json")


def _bearer(client_for, token):
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_an_admin_gives_a_tutor_a_login_with_a_password(api, client_for, tutor):
    response = api.post(
        f"/api/tutors/{tutor.pk}/account", {"email": "Ada.Tutor@School.test", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json() == {"tutor_id": tutor.pk, "email": "ada.tutor@school.test"}
    assert api.get(f"/api/tutors/{tutor.pk}").json()["account"] == "ada.tutor@school.test"

    tokens = _login(client_for, "ada.tutor@school.test")
    assert tokens.status_code == 200, tokens.content
    me = _bearer(client_for, tokens.json()["access_token"])
    assert [t["name"] for t in me.get("/api/tutors/").json()] == ["Ms Ada"]
    assert me.get(f"/api/tutors/{tutor.pk}").status_code == 200

    # One login per tutor, one account per email.
    again = api.post(f"/api/tutors/{tutor.pk}/account", {"email": "other@school.test"}, format="json")
    assert again.status_code == 409 and "already has a login" in again.json()["detail"]


def test_a_login_needs_a_free_email_and_a_good_password(api, tutor, admin_user):
    taken = api.post(f"/api/tutors/{tutor.pk}/account", {"email": admin_user.email}, format="json")
    assert taken.status_code == 400 and "already exists" in taken.json()["detail"]
    weak = api.post(f"/api/tutors/{tutor.pk}/account", {"email": "t@school.test", "password": "123"}, format="json")
    assert weak.status_code == 400 and weak.json()["field"] == "password"
    assert "too short" in weak.json()["detail"]
    bad = api.post(f"/api/tutors/{tutor.pk}/account", {"email": "not-an-email"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "email"
    tutor.refresh_from_db()
    assert tutor.account is None


def test_without_a_password_the_invite_link_sets_one_once(api, client_for, tutor):
    response = api.post(f"/api/tutors/{tutor.pk}/account", {"email": "invited@school.test"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["invite_expires_at"]
    path = re.sub(r"^https?://[^/]+", "", body["invite_url"])
    assert path.startswith("/accounts/invite/")
    # No password yet: nothing signs in.
    assert _login(client_for, "invited@school.test", "").status_code in (400, 401)

    browser = Client()
    page = browser.get(path)
    assert page.status_code == 200 and "invited@school.test" in page.content.decode()
    weak = browser.post(path, {"new_password1": "123", "new_password2": "123"})
    assert weak.status_code == 200 and "too short" in weak.content.decode()
    done = browser.post(path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 200 and "Your password is set" in done.content.decode()
    assert _login(client_for, "invited@school.test", NEW_PASSWORD).status_code == 200

    # Used once: the link no longer works, and cannot set another password.
    assert browser.get(path).status_code == 410
    again = browser.post(path, {"new_password1": "other-staple-88", "new_password2": "other-staple-88"})
    assert again.status_code == 410
    assert _login(client_for, "invited@school.test", NEW_PASSWORD).status_code == 200
    assert browser.get("/accounts/invite/forged:token/").status_code == 410


def test_an_invite_link_expires(api, tutor, settings):
    url = api.post(f"/api/tutors/{tutor.pk}/account", {"email": "late@school.test"}, format="json").json()["invite_url"]
    settings.TUTOR_INVITE_MAX_HOURS = 0  # any link is older than that
    page = Client().get(re.sub(r"^https?://[^/]+", "", url))
    assert page.status_code == 410 and "expired" in page.content.decode()


def test_a_tutor_cannot_manage_tutors_or_logins(api, client_for, tutor, admin_user):
    from tutors import account_services
    from tutors.services import tutor_create

    other = tutor_create(owner=admin_user, name="Mr Ben")
    user = account_services.tutor_account_create(tutor, email="t@school.test", password=PASSWORD).user
    me = client_for(user)
    created = me.post("/api/tutors/", {"name": "Mine"}, format="json")
    assert created.status_code == 403 and "cannot create tutors" in created.json()["detail"]
    assert me.patch(f"/api/tutors/{tutor.pk}", {"name": "Renamed"}, format="json").status_code == 403
    assert me.delete(f"/api/tutors/{tutor.pk}").status_code == 403
    login = me.post(f"/api/tutors/{tutor.pk}/account", {"email": "x@school.test"}, format="json")
    assert login.status_code == 403 and "ask your admin" in login.json()["detail"]
    assert me.delete(f"/api/tutors/{tutor.pk}/account").status_code == 403
    # Another tutor of the same admin does not exist for it.
    for method in ("get", "patch", "delete"):
        assert getattr(me, method)(f"/api/tutors/{other.pk}").status_code == 404
    assert me.post(f"/api/tutors/{other.pk}/account", {"email": "y@school.test"}, format="json").status_code == 404
    tutor.refresh_from_db()
    assert tutor.name == "Ms Ada"


def test_a_tutor_creates_avatars_for_its_own_tutor_only(
    client_for, tutor, admin_user, face_video, published_catalogues
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tutors import account_services
    from tutors.services import tutor_create

    other = tutor_create(owner=admin_user, name="Mr Ben")
    me = client_for(account_services.tutor_account_create(tutor, email="t@school.test", password=PASSWORD).user)

    def create(tutor_id, name):
        video = SimpleUploadedFile("v.mp4", face_video.read_bytes())
        return me.post(
            "/api/avatars/create", {"tutor_id": tutor_id, "name": name, "prompt_face": video}, format="multipart"
        )

    mine = create(tutor.pk, "mine")
    assert mine.status_code == 201, mine.content
    theirs = create(other.pk, "theirs")
    assert theirs.status_code == 404 and theirs.json()["field"] == "tutor_id"
    assert [a["name"] for a in me.get("/api/avatars/list").json()["avatars"]] == ["mine"]
    assert me.get(f"/api/avatars/{mine.json()['id']}").json()["permission"] == "own"


def test_removing_a_login_refuses_its_tokens(api, client_for, tutor):
    api.post(f"/api/tutors/{tutor.pk}/account", {"email": "t@school.test", "password": PASSWORD}, format="json")
    tokens = _login(client_for, "t@school.test").json()
    me = _bearer(client_for, tokens["access_token"])
    assert me.get("/api/avatars/list").status_code == 200

    removed = api.delete(f"/api/tutors/{tutor.pk}/account")
    assert removed.status_code == 200 and "t@school.test" in removed.json()["message"]
    assert me.get("/api/avatars/list").status_code == 401
    refresh = client_for(None).post("/api/auth/refresh", {"refresh_token": tokens["refresh_token"]}, format="json")
    assert refresh.status_code == 401
    assert _login(client_for, "t@school.test").status_code == 401
    tutor.refresh_from_db()
    assert tutor.account is None
    assert api.delete(f"/api/tutors/{tutor.pk}/account").status_code == 404
    # The tutor can be given a new login (another email).
    again = api.post(f"/api/tutors/{tutor.pk}/account", {"email": "t2@school.test"}, format="json")
    assert again.status_code == 201


def test_removing_a_login_closes_its_sockets_at_once(transactional_db, api, tutor):
    from channels.testing import WebsocketCommunicator
    from rest_framework_simplejwt.tokens import AccessToken

    from avatars.models import Avatar
    from tutor_site.asgi import application
    from tutors import account_services

    avatar = Avatar.objects.create(tutor=tutor, name="live_one", status="inactive")
    user = account_services.tutor_account_create(tutor, email="t@school.test", password=PASSWORD).user

    async def run():
        path = f"/ws/avatars/{avatar.pk}/events/"
        ws = WebsocketCommunicator(application, path, subprotocols=[f"bearer.{AccessToken.for_user(user)}"])
        connected, _ = await ws.connect(timeout=10)
        assert connected
        assert (await ws.receive_json_from(timeout=10))["event"] == "avatar.state"
        response = await sync_to_async(api.delete)(f"/api/tutors/{tutor.pk}/account")
        assert response.status_code == 200
        message = await ws.receive_json_from(timeout=5)  # well before WEBSOCKET_AUTH_RECHECK_SECONDS
        closed = await ws.receive_output(timeout=5)
        await ws.wait()
        return message, closed

    message, closed = async_to_sync(run)()
    assert "disabled" in message["detail"]
    assert closed == {"type": "websocket.close", "code": 4401}


def test_the_admin_page_gives_and_removes_a_login(admin_user, tutor):
    browser = Client()
    browser.force_login(admin_user)
    page = f"/admin/tutors/tutor/{tutor.pk}/login/"
    assert "Give login" in browser.get(page).content.decode()
    given = browser.post(page, {"_give": "1", "email": "t@school.test"}, follow=True)
    assert "one-time link" in given.content.decode()
    tutor.refresh_from_db()
    assert tutor.account.email == "t@school.test"
    assert "t@school.test" in browser.get(f"/admin/tutors/tutor/{tutor.pk}/change/").content.decode()
    browser.post(page, {"_remove": "1"})
    tutor.refresh_from_db()
    assert tutor.account is None

    # A tutor account has no such page, and sees its tutor read-only.
    from tutors import account_services

    user = account_services.tutor_account_create(tutor, email="t2@school.test", password=PASSWORD).user
    browser.force_login(user)
    refused = browser.get(page, follow=True)
    assert "cannot give or remove logins" in refused.content.decode()
    change = browser.get(f"/admin/tutors/tutor/{tutor.pk}/change/").content.decode()
    assert 'name="_save"' not in change


def test_deleting_a_tutor_removes_its_login(api, client_for, tutor):
    from tutors import account_services
    from tutors.models import User

    user = account_services.tutor_account_create(tutor, email="t@school.test", password=PASSWORD).user
    assert api.delete(f"/api/tutors/{tutor.pk}").status_code == 200
    user = User.objects.get(pk=user.pk)
    assert not user.is_active and not user.is_staff  # not left as an admin without tutors
    assert _login(client_for, "t@school.test").status_code == 401


def test_a_login_whose_tutor_was_deleted_otherwise_manages_nothing(api, client_for, tutor):
    """The tutor row gone without `tutor_delete` (e.g. through the database or a cascade):
    its login must not become an admin of its own."""
    from tutors import account_services
    from tutors.models import Tutor

    account_services.tutor_account_create(tutor, email="left@school.test", password=PASSWORD)
    tokens = _login(client_for, "left@school.test").json()
    Tutor.objects.filter(pk=tutor.pk).delete()
    me = _bearer(client_for, tokens["access_token"])
    assert me.get("/api/tutors/").json() == []
    created = me.post("/api/tutors/", {"name": "My own school"}, format="json")
    assert created.status_code == 403, created.content
    assert me.get("/api/avatars/list").json()["total"] == 0
