"""Student session tokens (issue 12): made by whoever may use an avatar, the secret shown
once and stored as a hash, listed without it, revoked; a token never does more than its
creator (a login removed or a share revoked ends it). Where they open what: tests/test_tenancy.py."""

from __future__ import annotations

import hashlib

import pytest

from avatars.models import SessionToken
from avatars.selectors import session_token_resolve
from contracts.errors import SessionTokenInvalid
from tests.roles import world_fixture  # noqa: F401 (the `world` fixture)

pytestmark = pytest.mark.django_db


def _create(client, avatar_id, **body):
    return client.post(f"/api/avatars/{avatar_id}/session-tokens", body, format="json")


def test_a_token_is_shown_once_and_stored_as_a_hash(world):
    admin = world.client("admin")
    response = _create(admin, world.avatar.pk, ttl_seconds=600, max_minutes=20, label="Class 4B")
    assert response.status_code == 201, response.content
    body = response.json()
    raw = body["token"]
    assert raw.startswith("vts_") and len(raw) > 40
    assert body["talk_url"] == f"http://testserver/talk/{raw}/"
    assert body["label"] == "Class 4B" and body["max_minutes"] == 20 and body["used_minutes"] == 0
    token = SessionToken.objects.get(pk=body["id"])
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    stored = [str(v) for v in SessionToken.objects.filter(pk=token.pk).values().first().values()]
    assert raw not in stored and not any(raw in value for value in stored)
    # Listed without the secret.
    listed = admin.get(f"/api/avatars/{world.avatar.pk}/session-tokens").json()
    row = next(t for t in listed if t["id"] == token.pk)
    assert "token" not in row and row["prefix"] == raw[:12] and row["revoked"] is False
    assert raw not in str(listed)
    # Revoked: listed as such, and it opens nothing.
    response = admin.delete(f"/api/avatars/{world.avatar.pk}/session-tokens/{token.pk}")
    assert response.status_code == 200, response.content
    row = next(t for t in admin.get(f"/api/avatars/{world.avatar.pk}/session-tokens").json() if t["id"] == token.pk)
    assert row["revoked"] is True
    with pytest.raises(SessionTokenInvalid, match="revoked"):
        session_token_resolve(raw)


def test_token_input_is_checked(world):
    admin = world.client("admin")
    for body, field in (
        ({"ttl_seconds": 59}, "ttl_seconds"),
        ({"ttl_seconds": 7 * 24 * 3600 + 1}, "ttl_seconds"),
        ({"max_minutes": 0}, "max_minutes"),
        ({"label": "x" * 121}, "label"),
        ({"scope": "all"}, "scope"),
    ):
        response = _create(admin, world.avatar.pk, **body)
        assert response.status_code == 400 and field in response.json()["errors"], (body, response.content)
    assert _create(admin, world.avatar.pk).json()["expires_at"]  # default: an hour


def test_grantees_make_their_own_tokens_and_see_only_those(world):
    from tests.roles import ACCESS

    theirs = _create(world.client("grantee_use"), world.avatar.pk, label="carol's").json()
    mine = _create(world.client("admin"), world.avatar.pk, label="ada's").json()
    labels = {
        t["label"] for t in world.client("grantee_use").get(f"/api/avatars/{world.avatar.pk}/session-tokens").json()
    }
    assert labels == {"carol's"}
    owner_labels = {
        t["label"] for t in world.client("tutor").get(f"/api/avatars/{world.avatar.pk}/session-tokens").json()
    }
    assert {"carol's", "ada's"} <= owner_labels
    # A grantee cannot revoke the owner's token (404), the owner side can revoke the grantee's.
    url = f"/api/avatars/{world.avatar.pk}/session-tokens"
    assert world.client("grantee_use").delete(f"{url}/{mine['id']}").status_code == 404
    assert world.client("tutor").delete(f"{url}/{theirs['id']}").status_code == 200
    # Roles that cannot use the avatar make none.
    for role in ("other_tutor", "revoked", "other_admin"):
        assert ACCESS[role] is None
        assert _create(world.client(role), world.avatar.pk).status_code == 404, role


def test_usage_of_a_token_counts_against_its_creators_tutor(world):
    """The owner side and a grantee admin without a tutor: the avatar's tutor; a tutor
    account it is shared with: its own tutor."""
    from avatars.selectors import session_token_resolve as resolve

    roles = ("admin", "tutor", "grantee_use", "grantee_manage")
    by_role = {role: _create(world.client(role), world.avatar.pk).json()["token"] for role in roles}
    tutors = {role: resolve(raw).usage_tutor.name for role, raw in by_role.items()}
    assert tutors == {"admin": "Ms Ada", "tutor": "Ms Ada", "grantee_use": "Ms Ada", "grantee_manage": "Ms Dee"}


def test_a_token_does_no_more_than_its_creator(world, api):
    from avatars import share_services
    from tutors import account_services

    carol = _create(world.client("grantee_use"), world.avatar.pk).json()["token"]
    tutors_token = _create(world.client("tutor"), world.avatar.pk).json()["token"]
    assert session_token_resolve(carol) and session_token_resolve(tutors_token)
    # The share revoked: the grantee's tokens stop working.
    share_services.avatar_share_delete(world.shares["grantee_use"])
    with pytest.raises(SessionTokenInvalid):
        session_token_resolve(carol)
    # The tutor's login removed: its tokens stop working.
    account_services.tutor_account_remove(world.tutor)
    with pytest.raises(SessionTokenInvalid):
        session_token_resolve(tutors_token)


def test_an_expired_token_opens_nothing(world):
    with pytest.raises(SessionTokenInvalid, match="expired"):
        session_token_resolve(world.tokens["token_expired"])
    with pytest.raises(SessionTokenInvalid):
        session_token_resolve("vts_unknown")
    with pytest.raises(SessionTokenInvalid):
        session_token_resolve("not-even-a-token")
