"""A world with every role of the permission model (issue 12), for the tenancy walk, the
sharing tests and the WebSocket checks.

- `admin` (ada) owns the tutors "Ms Ada" and "Mr Ben"; "secret_avatar" belongs to Ms Ada,
  "ben_avatar" to Mr Ben.
- `tutor`: Ms Ada's login; `other_tutor`: Mr Ben's login (same admin).
- `grantee_use`: another admin (carol), secret_avatar shared with "use";
  `grantee_manage`: carol's tutor's login (dee), shared with "manage";
  `revoked`: a third admin (erin), shared then revoked;
  `other_admin`: bob, never shared with.

Student session tokens (no account: `World.tokens`, the raw secrets): `token_valid` of
secret_avatar, `token_expired`, `token_revoked`, `token_other_avatar` (of ben_avatar).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.conftest import PASSWORD

ROLES = ("admin", "tutor", "other_tutor", "grantee_use", "grantee_manage", "revoked", "other_admin")
# The access level each role has to secret_avatar (None: it cannot see it).
ACCESS = {
    "admin": "own",
    "tutor": "own",
    "other_tutor": None,
    "grantee_use": "use",
    "grantee_manage": "manage",
    "revoked": None,
    "other_admin": None,
}
LEVELS = ("view", "use", "manage", "own")
TOKEN_ROLES = ("token_valid", "token_expired", "token_revoked", "token_other_avatar")


@dataclass
class World:
    users: dict = field(default_factory=dict)
    ids: dict = field(default_factory=dict)  # path parameter -> object id
    avatar: object = None
    ben_avatar: object = None
    tutor: object = None
    other_tutor: object = None
    shares: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)  # token role -> raw session token

    def client(self, role):
        from tests.conftest import _client_for

        if role in TOKEN_ROLES:  # a student's client: the session token, no account
            from rest_framework.test import APIClient

            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {self.tokens[role]}")
            return client
        return _client_for(self.users[role])


def make_world(admin_user, other_admin, tutor) -> World:
    from avatars import share_services
    from avatars.models import Avatar, AvatarRender
    from tutors import account_services
    from tutors.services import admin_create, tutor_create

    world = World(tutor=tutor)
    world.users["admin"] = admin_user
    world.users["other_admin"] = other_admin
    world.users["tutor"] = account_services.tutor_account_create(
        tutor, email="ada.tutor@school.test", password=PASSWORD
    ).user
    world.other_tutor = tutor_create(owner=admin_user, name="Mr Ben", description="Physics")
    world.users["other_tutor"] = account_services.tutor_account_create(
        world.other_tutor, email="ben@school.test", password=PASSWORD
    ).user
    carol, _ = admin_create(email="carol@third.test", password=PASSWORD)
    dee_tutor = tutor_create(owner=carol, name="Ms Dee")
    world.users["grantee_use"] = carol
    world.users["grantee_manage"] = account_services.tutor_account_create(
        dee_tutor, email="dee@third.test", password=PASSWORD
    ).user
    erin, _ = admin_create(email="erin@fourth.test", password=PASSWORD)
    world.users["revoked"] = erin

    world.avatar = Avatar.objects.create(tutor=tutor, name="secret_avatar", display_name="Secret", status="inactive")
    world.ben_avatar = Avatar.objects.create(tutor=world.other_tutor, name="ben_avatar", status="inactive")
    render = AvatarRender.objects.create(avatar=world.avatar, text="Secret words")
    for role, permission in (("grantee_use", "use"), ("grantee_manage", "manage"), ("revoked", "use")):
        world.shares[role], _ = share_services.avatar_share_create(
            world.avatar, by=admin_user, email=world.users[role].email, permission=permission
        )
    share_services.avatar_share_delete(world.shares.pop("revoked"))
    world.ids = {
        "tutor_id": tutor.pk,
        "avatar_id": world.avatar.pk,
        "render_id": render.pk,
        "share_id": world.shares["grantee_use"].pk,
    }
    world.tokens, token_ids = make_tokens(admin_user, world.avatar, world.ben_avatar)
    world.ids["token_id"] = token_ids["token_valid"]
    try:  # the conversations app (knowledge and conversations), when installed
        from conversations.models import Conversation, KnowledgeDocument

        document = KnowledgeDocument.objects.create(avatar=world.avatar, title="Secret doc", source="text")
        conversation = Conversation.objects.create(avatar=world.avatar, user=admin_user, session_id="secret-s1")
        world.ids.update(doc_id=document.pk, document_id=document.pk, conversation_id=conversation.pk)
    except ImportError:
        pass
    return world


def make_tokens(admin_user, avatar, other_avatar) -> tuple[dict, dict]:
    """({token role: raw secret}, {token role: id}) of the four student token roles."""
    import datetime as dt

    from django.utils import timezone

    from avatars import token_services
    from avatars.models import SessionToken

    raws, ids = {}, {}
    for role, target in (
        ("token_valid", avatar),
        ("token_expired", avatar),
        ("token_revoked", avatar),
        ("token_other_avatar", other_avatar),
    ):
        token, raws[role] = token_services.session_token_create(target, by=admin_user, label=role)
        ids[role] = token.pk
    SessionToken.objects.filter(pk=ids["token_expired"]).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    token_services.session_token_revoke(SessionToken.objects.get(pk=ids["token_revoked"]))
    return raws, ids


@pytest.fixture(name="world")
def world_fixture(admin_user, other_admin, tutor) -> World:
    return make_world(admin_user, other_admin, tutor)
