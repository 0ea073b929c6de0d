"""JWT login, refresh rotation and logout as a frontend uses them."""

import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _login(client, email, password, fmt="json"):
    return client.post("/api/auth/login", {"username": email, "password": password}, format=fmt)


@pytest.mark.parametrize("fmt", ["json", "multipart"])
def test_login_with_json_or_form_returns_bearer_tokens(client_for, admin_user, fmt):
    response = _login(client_for(None), admin_user.email, PASSWORD, fmt)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] > 0
    assert body["access_token"] and body["refresh_token"]
    api = client_for(None)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert api.get("/api/tutors/").status_code == 200


@pytest.mark.parametrize("password", ["wrong-password", ""])
def test_bad_login_is_401_with_a_message(client_for, admin_user, password):
    response = _login(client_for(None), admin_user.email, password)
    assert response.status_code == 401
    assert "email or password" in response.json()["detail"]


def test_non_admin_account_cannot_log_in(client_for, db):
    from tutors.models import User

    User.objects.create_user("student@school.test", PASSWORD)
    assert _login(client_for(None), "student@school.test", PASSWORD).status_code == 401


def test_refresh_rotates_and_the_old_refresh_token_stops_working(client_for, admin_user):
    client = client_for(None)
    first = _login(client, admin_user.email, PASSWORD).json()
    rotated = client.post("/api/auth/refresh", {"refresh_token": first["refresh_token"]}, format="json")
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != first["refresh_token"]
    again = client.post("/api/auth/refresh", {"refresh_token": first["refresh_token"]}, format="json")
    assert again.status_code == 401
    assert client.post("/api/auth/refresh", {"refresh_token": "garbage"}, format="json").status_code == 401


def test_logout_blacklists_the_refresh_token(client_for, admin_user):
    client = client_for(None)
    tokens = _login(client, admin_user.email, PASSWORD).json()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert client.post("/api/auth/logout", {"refresh_token": tokens["refresh_token"]}, format="json").status_code == 200
    after = client.post("/api/auth/refresh", {"refresh_token": tokens["refresh_token"]}, format="json")
    assert after.status_code == 401


def test_requests_without_a_token_are_401(client_for, db):
    client = client_for(None)
    for path in ("/api/tutors/", "/api/avatars/list", "/api/avatars/avatar-models"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json()["detail"]


def test_schema_and_docs_are_served(client_for, admin_user):
    api = client_for(admin_user)
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    docs = api.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
