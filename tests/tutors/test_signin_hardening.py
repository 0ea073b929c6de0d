"""Sign-in under attack: lockout after repeated failures (API and admin), one-use refresh
tokens with an absolute lifetime, revoked by a password change; strong passwords only."""

import threading
import time

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tests.conftest import PASSWORD
from tutors import auth_services

pytestmark = pytest.mark.django_db


def _login(email, password, client=None):
    return (client or APIClient()).post("/api/auth/login", {"username": email, "password": password}, format="json")


def test_repeated_failures_lock_the_email_out_even_with_the_right_password(admin_user, settings):
    settings.LOGIN_MAX_FAILURES = 3
    for _ in range(3):
        assert _login(admin_user.email, "wrong-password-0").status_code == 401
    response = _login(admin_user.email, PASSWORD)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0 and "Too many failed sign-ins" in response.json()["detail"]
    # Another account from the same address is not locked by it.
    assert _login("someone-else@school.test", "whatever-123").status_code == 401


def test_a_success_resets_the_count(admin_user, settings):
    settings.LOGIN_MAX_FAILURES = 3
    for _ in range(2):
        _login(admin_user.email, "wrong-password-0")
    assert _login(admin_user.email, PASSWORD).status_code == 200
    for _ in range(2):
        _login(admin_user.email, "wrong-password-0")
    assert _login(admin_user.email, PASSWORD).status_code == 200


def test_one_address_guessing_many_emails_is_locked_out(admin_user, settings):
    settings.LOGIN_MAX_FAILURES_PER_IP = 4
    for i in range(4):
        _login(f"guess{i}@school.test", "wrong-password-0")
    assert _login(admin_user.email, PASSWORD).status_code == 429


def test_the_admin_login_form_is_locked_out_too(client, admin_user, settings):
    settings.LOGIN_MAX_FAILURES = 2
    for _ in range(2):
        response = client.post("/admin/login/", {"username": admin_user.email, "password": "nope-nope-1"})
        assert response.status_code == 200  # the form again, with its error
    response = client.post("/admin/login/", {"username": admin_user.email, "password": PASSWORD})
    assert response.status_code == 429 and response["Retry-After"]


def _refresh(token):
    return APIClient().post("/api/auth/refresh", {"refresh_token": token}, format="json")


def test_a_password_change_revokes_the_refresh_tokens(admin_user):
    tokens = _login(admin_user.email, PASSWORD).json()
    admin_user.set_password("a-brand-new-secret-7")
    admin_user.save()
    response = _refresh(tokens["refresh_token"])
    assert response.status_code == 401 and "password was changed" in response.json()["detail"]
    assert _refresh(_login(admin_user.email, "a-brand-new-secret-7").json()["refresh_token"]).status_code == 200


def test_a_refresh_chain_ends_after_the_absolute_lifetime(admin_user, settings):
    settings.JWT_SESSION_MAX_DAYS = 1
    old = auth_services.token_pair_for(admin_user, auth_time=int(time.time()) - 2 * 86400)
    response = _refresh(str(old))
    assert response.status_code == 401 and "too old" in response.json()["detail"]
    fresh = _login(admin_user.email, PASSWORD).json()["refresh_token"]
    rotated = _refresh(fresh).json()["refresh_token"]
    # The chain keeps its sign-in time across rotations.
    from rest_framework_simplejwt.tokens import RefreshToken

    assert RefreshToken(rotated)["auth_time"] == RefreshToken(fresh, verify=False)["auth_time"]


@pytest.mark.django_db(transaction=True)
def test_the_same_refresh_token_used_twice_at_once_gives_one_new_pair(admin_user):
    token = _login(admin_user.email, PASSWORD).json()["refresh_token"]
    results, barrier = [], threading.Barrier(2)

    def use():
        barrier.wait()
        try:
            auth_services.refresh_rotate(token)
            results.append("ok")
        except auth_services.SignInRefused:
            results.append("refused")
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=use) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok", "refused"]


@pytest.mark.parametrize("password", ["password123", "short1", "12345678901"])
def test_weak_passwords_are_refused_by_the_command(password):
    with pytest.raises(CommandError):
        call_command("createadmin", "weak@school.test", "--password", password)
