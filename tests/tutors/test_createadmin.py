"""`manage.py createadmin`: admins who own tutors, operators, and the mistakes it refuses."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tutors.models import User
from tutors.services import ADMINS_GROUP

ADMIN_PERMISSIONS = [
    f"{app}.{action}_{model}"
    for app, model in (("tutors", "tutor"), ("avatars", "avatar"))
    for action in ("add", "change", "delete", "view")
]


def createadmin(*args) -> str:
    out = StringIO()
    call_command("createadmin", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def login(email: str, password: str):
    return APIClient().post("/api/auth/login", {"username": email, "password": password}, format="json")


def test_creates_a_staff_admin_who_can_log_in(db):
    out = createadmin("New.Admin@School.test", "--password", "long-enough-1")

    assert "Created admin new.admin@school.test" in out
    assert "Password:" not in out  # it was given, so it is not echoed
    user = User.objects.get(email="new.admin@school.test")
    assert user.is_staff and user.is_active and not user.is_superuser
    assert user.groups.filter(name=ADMINS_GROUP).exists()
    for perm in ADMIN_PERMISSIONS:
        assert user.has_perm(perm), perm

    response = login("new.admin@school.test", "long-enough-1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["access_token"] and body["refresh_token"] and body["token_type"] == "bearer"
    # The token works on the API, and the admin starts with no tutors of its own.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    tutors = client.get("/api/tutors/")
    assert tutors.status_code == 200

    assert login("new.admin@school.test", "wrong-password").status_code == 401


def test_the_admin_can_use_the_django_admin(db, client):
    createadmin("staff@school.test", "--password", "long-enough-1")
    assert client.login(username="staff@school.test", password="long-enough-1")
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/avatars/avatar/").status_code == 200
    assert client.get("/admin/tutors/tutor/").status_code == 200


def test_superuser_flag_makes_an_operator(db):
    out = createadmin("ops@platform.test", "--password", "long-enough-2", "--superuser")

    assert "Created operator ops@platform.test" in out
    user = User.objects.get(email="ops@platform.test")
    assert user.is_superuser and user.is_staff
    assert login("ops@platform.test", "long-enough-2").status_code == 200


def test_without_password_a_random_one_is_printed_and_works(db):
    out = createadmin("random@school.test")
    password = out.split("Password:", 1)[1].strip()
    assert len(password) >= 8
    assert login("random@school.test", password).status_code == 200


def test_duplicate_email_is_refused_clearly(db):
    createadmin("ada@school.test", "--password", "long-enough-1")
    with pytest.raises(CommandError, match="An account with the email ada@school.test already exists"):
        createadmin("ADA@school.test", "--password", "another-pass-2")  # emails compare case-insensitively
    assert User.objects.filter(email__iexact="ada@school.test").count() == 1
    # The first password still holds.
    assert login("ada@school.test", "long-enough-1").status_code == 200


def test_short_password_is_refused(db):
    with pytest.raises(CommandError, match="at least 10 characters"):
        createadmin("short@school.test", "--password", "2short")
    assert not User.objects.filter(email="short@school.test").exists()


def test_invalid_email_is_refused(db):
    with pytest.raises(CommandError, match="valid email"):
        createadmin("not-an-email", "--password", "long-enough-1")
    assert not User.objects.exists()
