"""Avatar sharing (issue 12): the owner side shares and revokes; `use` and `manage` give
what they say and nothing more; revoking is a 404 at once and closes the grantee's sockets."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import Client

from tests.roles import world_fixture  # noqa: F401 (the `world` fixture)

pytestmark = pytest.mark.django_db


def test_the_owner_shares_lists_changes_and_revokes(world):
    admin, avatar = world.client("admin"), world.avatar
    bob = world.users["other_admin"]
    created = admin.post(f"/api/avatars/{avatar.pk}/shares", {"email": bob.email}, format="json")
    assert created.status_code == 201, created.content
    share = created.json()
    assert share["email"] == bob.email and share["permission"] == "use"
    assert share["created_by"] == world.users["admin"].email
    listed = admin.get(f"/api/avatars/{avatar.pk}/shares").json()
    assert {s["email"]: s["permission"] for s in listed} == {
        bob.email: "use",
        "carol@third.test": "use",
        "dee@third.test": "manage",
    }
    # Sharing again changes the permission (200), no second share.
    changed = admin.post(
        f"/api/avatars/{avatar.pk}/shares", {"email": bob.email, "permission": "manage"}, format="json"
    )
    assert changed.status_code == 200 and changed.json()["id"] == share["id"]
    assert changed.json()["permission"] == "manage"
    bob_client = world.client("other_admin")
    assert bob_client.patch(f"/api/avatars/{avatar.pk}", {"description": "Bob's"}, format="json").status_code == 200

    revoked = admin.delete(f"/api/avatars/{avatar.pk}/shares/{share['id']}")
    assert revoked.status_code == 200
    assert bob_client.get(f"/api/avatars/{avatar.pk}").status_code == 404  # at once
    assert bob_client.get("/api/avatars/list").json()["total"] == 0
    assert admin.delete(f"/api/avatars/{avatar.pk}/shares/{share['id']}").status_code == 404


def test_sharing_refuses_what_makes_no_sense(world):
    admin, avatar = world.client("admin"), world.avatar
    url = f"/api/avatars/{avatar.pk}/shares"
    unknown = admin.post(url, {"email": "nobody@nowhere.test"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["detail"] == "No account with that email."
    for owner_side in ("ada@school.test", "ada.tutor@school.test"):
        refused = admin.post(url, {"email": owner_side}, format="json")
        assert refused.status_code == 400 and "already has every right" in refused.json()["detail"]
    bad = admin.post(url, {"email": "bob@other-school.test", "permission": "own"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "permission"
    extra = admin.post(url, {"email": "bob@other-school.test", "delete": True}, format="json")
    assert extra.status_code == 400


def test_grantees_cannot_reshare_or_see_the_shares(world):
    for role in ("grantee_use", "grantee_manage"):
        client = world.client(role)
        url = f"/api/avatars/{world.avatar.pk}/shares"
        assert client.get(url).status_code == 404
        assert client.post(url, {"email": "bob@other-school.test"}, format="json").status_code == 404
        assert client.delete(f"{url}/{world.shares['grantee_use'].pk}").status_code == 404
    assert world.avatar.shares.count() == 2


def test_use_lets_a_grantee_talk_but_not_change(world):
    client, avatar = world.client("grantee_use"), world.avatar
    assert client.get(f"/api/avatars/{avatar.pk}").json()["permission"] == "use"
    patched = client.patch(f"/api/avatars/{avatar.pk}", {"description": "mine now"}, format="json")
    assert patched.status_code == 403
    assert "shared with you to use, not to change" in patched.json()["detail"]
    assert "Ms Ada" in patched.json()["detail"]
    deleted = client.delete(f"/api/avatars/{avatar.pk}")
    assert deleted.status_code == 403 and "can delete it" in deleted.json()["detail"]
    assert client.post(f"/api/avatars/{avatar.pk}/reprocess").status_code == 403
    # Render: past the permission check (an empty body is a 400 about the text, not a 403).
    render = client.post(f"/api/avatars/{avatar.pk}/render", {}, format="json")
    assert render.status_code == 400, render.content
    assert client.get(f"/api/avatars/{avatar.pk}/renders").status_code == 200
    avatar.refresh_from_db()
    assert avatar.description == ""


def test_manage_lets_a_grantee_edit_but_never_delete(world):
    client, avatar = world.client("grantee_manage"), world.avatar
    patched = client.patch(f"/api/avatars/{avatar.pk}", {"display_name": "Shared Ada"}, format="json")
    assert patched.status_code == 200, patched.content
    assert client.delete(f"/api/avatars/{avatar.pk}").status_code == 403
    render_id = world.ids["render_id"]
    assert client.delete(f"/api/avatars/{avatar.pk}/renders/{render_id}").status_code == 403
    avatar.refresh_from_db()
    assert avatar.display_name == "Shared Ada"


def test_a_tutor_shares_its_avatar_with_a_colleague(world):
    tutor, colleague = world.client("tutor"), world.client("other_tutor")
    assert colleague.get(f"/api/avatars/{world.avatar.pk}").status_code == 404
    shared = tutor.post(
        f"/api/avatars/{world.avatar.pk}/shares", {"email": "ben@school.test", "permission": "use"}, format="json"
    )
    assert shared.status_code == 201, shared.content
    names = {a["name"]: a for a in colleague.get("/api/avatars/list").json()["avatars"]}
    assert set(names) == {"ben_avatar", "secret_avatar"}
    assert names["secret_avatar"]["shared"] is True and names["ben_avatar"]["shared"] is False
    # The tutor cannot share its colleague's avatar (it does not see it).
    other = tutor.post(f"/api/avatars/{world.ben_avatar.pk}/shares", {"email": "carol@third.test"}, format="json")
    assert other.status_code == 404


def test_the_admin_shows_a_shared_avatar_read_only_or_editable_as_shared(world):
    change = f"/admin/avatars/avatar/{world.avatar.pk}/change/"
    pages = {}
    for role in ("grantee_use", "grantee_manage", "admin", "other_admin"):
        browser = Client()
        browser.force_login(world.users[role])
        pages[role] = browser.get(change)
        listing = browser.get("/admin/avatars/avatar/").content.decode()
        assert ("secret_avatar" in listing) is (role != "other_admin"), role
        deleting = browser.get(f"/admin/avatars/avatar/{world.avatar.pk}/delete/")
        assert deleting.status_code in ((200,) if role == "admin" else (302, 403)), (role, deleting.status_code)
    assert pages["other_admin"].status_code == 302  # Django's "doesn't exist" redirect to the index
    assert 'name="_save"' not in pages["grantee_use"].content.decode()
    assert 'name="display_name"' not in pages["grantee_use"].content.decode()
    assert 'name="display_name"' in pages["grantee_manage"].content.decode()
    assert 'name="_save"' in pages["admin"].content.decode()


def test_revoking_closes_the_grantees_sockets_of_that_avatar(transactional_db, world):
    from channels.testing import WebsocketCommunicator
    from rest_framework_simplejwt.tokens import AccessToken

    from tutor_site.asgi import application

    grantee = world.users["grantee_use"]
    admin = world.client("admin")
    share = world.shares["grantee_use"]

    async def run():
        token = f"bearer.{AccessToken.for_user(grantee)}"
        events = WebsocketCommunicator(application, f"/ws/avatars/{world.avatar.pk}/events/", subprotocols=[token])
        assert (await events.connect(timeout=10))[0]
        assert (await events.receive_json_from(timeout=10))["event"] == "avatar.state"
        response = await sync_to_async(admin.delete)(f"/api/avatars/{world.avatar.pk}/shares/{share.pk}")
        assert response.status_code == 200
        message = await events.receive_json_from(timeout=5)
        closed = await events.receive_output(timeout=5)
        await events.wait()
        # And a new socket is refused like one for an avatar it never saw.
        again = WebsocketCommunicator(application, f"/ws/avatars/{world.avatar.pk}/session/", subprotocols=[token])
        return message, closed, await again.connect(timeout=10)

    message, closed, again = async_to_sync(run)()
    assert message["detail"] == "Your access to this avatar was removed."
    assert closed == {"type": "websocket.close", "code": 4404}
    assert again == (False, 4404)


def test_the_knowledge_and_conversation_lists_read_through_the_avatar_selector(world):
    """`avatar__in=avatar_queryset_for(user)` (the conversations app's admin lists) works on
    the annotated queryset and gives each role the documents of the avatars it sees."""
    conversations = pytest.importorskip("conversations.models")
    from avatars.selectors import avatar_queryset_for

    for role, count in (("admin", 1), ("grantee_use", 1), ("other_tutor", 0), ("revoked", 0)):
        user = world.users[role]
        seen = conversations.KnowledgeDocument.objects.filter(avatar__in=avatar_queryset_for(user))
        assert seen.count() == count, role
