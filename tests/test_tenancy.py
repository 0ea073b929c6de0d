"""Walk every endpoint of the OpenAPI schema as every role of the permission model
(tests/roles.py): each gets the answer its access level gives it — through (the view runs),
403 (it sees the avatar but lacks the level), or 404 (it cannot see it at all, whatever its
role) — and lists never show what a role cannot see. Then the WebSocket connects and the
LiveTalking proxy, per role.

| role | view | use | manage | own | shares | tutor: read / change / give login |
|---|---|---|---|---|---|---|
| admin, tutor | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ / ✓ (tutor: 403) / ✓ (tutor: 403) |
| grantee_manage | ✓ | ✓ | ✓ | 403 | 404 | 404 |
| grantee_use | ✓ | ✓ | 403 | 403 | 404 | 404 |
| other_tutor, revoked, other_admin | 404 | 404 | 404 | 404 | 404 | 404 |

Templates and batches (avatar_templates): the admin's template is seen by the admin and all
its tutors' logins (changed by the admin only: a login gets 403), a 404 for everyone else;
a batch of Ms Ada's follows her tutor (admin and her login; 404 for the others).

Student session tokens (no account) open one avatar's live sessions and nothing else:

| token | REST API | talk page | session socket | events socket | proxy offer |
|---|---|---|---|---|---|
| valid (secret_avatar) | 401 | 200 | accepted | 4401 | its avatar: through (409 not started); another: 404 |
| expired, revoked | 401 | 404 page | 4401 | 4401 | 401 |
| another avatar's (ben_avatar) | 401 | 200 (ben_avatar's) | 4404 | 4401 | 404 |
"""

import json
import re

import pytest
from asgiref.sync import async_to_sync

from tests.roles import ACCESS, LEVELS, ROLES, TOKEN_ROLES, world_fixture  # noqa: F401 (the `world` fixture)

pytestmark = pytest.mark.django_db

SKIP_PREFIXES = ("/api/auth/", "/api/schema/", "/api/docs/", "/api/health")
# Path parameters that are not object ids, with a value to call them with.
NON_OBJECT_PARAMS = {"path": "offer"}
# Endpoints of the conversations app, walked on their own too.
CONVERSATIONS_PATHS = re.compile(r"/(knowledge|conversations)")


def _need(method: str, path: str) -> str:
    """The access an endpoint asks for (avatars.selectors), or the rule it follows."""
    if path.startswith("/api/tutors/"):
        return "tutor-view" if method == "get" else "tutor-manage"
    if path.startswith("/api/avatar-templates/"):
        return "template-view" if method == "get" else "template-change"
    if path.startswith("/api/avatars/batches/"):
        return "tutor-view"  # a batch of Ms Ada's: her admin and her own login
    if path.endswith("/session-tokens/{token_id}"):
        return "owner-side"  # the admin's token: a grantee sees and revokes only its own
    if path.endswith("/session-tokens"):
        return "use"
    if path.startswith("/api/tts/preview/"):
        return "self"  # a voice preview job is its requester's alone
    if "/shares" in path:
        return "owner-side"
    if "/knowledge" in path:
        return "use" if method == "get" else "manage"
    if path.endswith("/conversations/{conversation_id}"):
        return "owner-side"  # the admin's conversation: its owner side sees it, a grantee only its own
    if "/conversations" in path:
        return "use"
    tail = path.removeprefix("/api/avatars/{avatar_id}")
    rules = {
        ("get", ""): "view",
        ("patch", ""): "manage",
        ("delete", ""): "own",
        ("get", "/preview"): "view",
        ("post", "/reprocess"): "own",
        ("post", "/render"): "use",
        ("get", "/renders"): "view",
        ("get", "/renders/{render_id}"): "view",
        ("delete", "/renders/{render_id}"): "own",
        ("post", "/start"): "use",
        ("get", "/start"): "use",
        ("post", "/stop"): "use",
        ("get", "/ice-servers"): "use",
    }
    assert (method, tail) in rules, f"no access rule for {method.upper()} {path}: add it to the walk"
    return rules[(method, tail)]


def _expected(role: str, need: str):
    """'ok' (the view runs), 403 or 404."""
    level = ACCESS[role]
    if need == "self":
        return "ok" if role == "admin" else 404
    if need == "tutor-view":
        return "ok" if role in ("admin", "tutor") else 404
    if need == "tutor-manage":
        return {"admin": "ok", "tutor": 403}.get(role, 404)
    if need == "template-view":  # the admin's template: the admin and every one of its tutors' logins
        return "ok" if role in ("admin", "tutor", "other_tutor") else 404
    if need == "template-change":
        return {"admin": "ok", "tutor": 403, "other_tutor": 403}.get(role, 404)
    if need == "owner-side":
        return "ok" if level == "own" else 404
    if level is None:
        return 404
    return "ok" if LEVELS.index(level) >= LEVELS.index(need) else 403


def _denied_as(response) -> int | None:
    """403 / 404 when the answer is a refusal of access (a 404 of something else, such as
    a preview not made yet, is not one)."""
    if response.status_code == 403:
        return 403
    if response.status_code == 404 and "not found" in response.content.decode().lower():
        return 404
    return None


@pytest.fixture
def walk_ids(world, published_catalogues, monkeypatch):
    from avatars import live_services, speech_services

    monkeypatch.setattr(speech_services, "task_send", lambda *a, **k: None)
    monkeypatch.setattr(live_services, "task_send", lambda *a, **k: None, raising=False)
    job = world.client("admin").post("/api/tts/preview", {"text": "Secret words.", "tts_model": "piper"}, format="json")
    assert job.status_code == 202, job.content
    # The admin's template and a batch of Ms Ada's (avatar_templates).
    from avatar_templates.models import AvatarBatch, AvatarBatchItem, AvatarTemplate

    template = AvatarTemplate.objects.create(owner=world.users["admin"], name="Secret template")
    batch = AvatarBatch.objects.create(tutor=world.tutor, template=template, template_name=template.name)
    AvatarBatchItem.objects.create(batch=batch, position=0, name="secret_avatar", avatar=world.avatar)
    return {**world.ids, "job_id": job.json()["job_id"], "template_id": template.pk, "batch_id": batch.pk}


def _schema(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    return json.loads(response.content)


def _walk(world, ids) -> list[tuple]:
    """(role, method, url, expected, got) for every mismatch."""
    paths = _schema(world.client("admin"))["paths"]
    mismatches, checked = [], 0
    for role in ROLES:
        client = world.client(role)
        for path, operations in paths.items():
            params = [p for p in re.findall(r"{(\w+)}", path) if p not in NON_OBJECT_PARAMS]
            if not params or path.startswith(SKIP_PREFIXES):
                continue  # the LiveTalking proxy names its avatar in the body: see below
            url = path
            for name in params:
                assert name in ids, f"no object for parameter {name} in {path}"
                url = url.replace("{" + name + "}", str(ids[name]))
            for method in operations:
                if method not in ("get", "post", "patch", "put", "delete"):
                    continue
                expected = _expected(role, _need(method, path))
                if expected == "ok" and method == "delete":
                    continue  # allowed deletes are tested on their own (they would delete the world)
                response = getattr(client, method)(url, {}, format="json")
                got = _denied_as(response) or "ok"
                checked += 1
                if got != expected:
                    mismatches.append((role, method, path, expected, got, response.status_code))
                if expected == 404:
                    assert "Secret" not in response.content.decode(), (role, method, url)
    assert checked >= 7 * 10
    return mismatches


def test_every_object_endpoint_answers_each_role_as_its_access_says(world, walk_ids):
    mismatches = [m for m in _walk(world, walk_ids) if not CONVERSATIONS_PATHS.search(m[2])]
    assert not mismatches, "\n".join(map(str, mismatches))
    # And the owner side still has everything.
    assert world.client("admin").get(f"/api/avatars/{world.avatar.pk}").status_code == 200
    assert world.client("tutor").get(f"/api/tutors/{world.tutor.pk}").status_code == 200


def test_knowledge_and_conversations_follow_the_access_levels(world, walk_ids):
    mismatches = [m for m in _walk(world, walk_ids) if CONVERSATIONS_PATHS.search(m[2])]
    assert not mismatches, "\n".join(map(str, mismatches))
    if "conversation_id" in walk_ids:  # the admin's conversation is not a grantee's
        url = f"/api/avatars/{world.avatar.pk}/conversations/{walk_ids['conversation_id']}"
        assert world.client("grantee_use").get(url).status_code == 404


def test_lists_show_each_role_only_what_it_may_see(world, walk_ids):
    paths = _schema(world.client("admin"))["paths"]
    sees = {
        "admin": {"secret_avatar", "ben_avatar"},
        "tutor": {"secret_avatar"},
        "other_tutor": {"ben_avatar"},
        "grantee_use": {"secret_avatar"},
        "grantee_manage": {"secret_avatar"},
        "revoked": set(),
        "other_admin": set(),
    }
    for role in ROLES:
        client = world.client(role)
        for path, operations in paths.items():
            if "{" in path or path.startswith(SKIP_PREFIXES) or "get" not in operations:
                continue
            response = client.get(path)
            assert response.status_code in (200, 400), (role, path, response.status_code)
            body = response.content.decode()
            for name in {"secret_avatar", "ben_avatar"} - sees[role]:
                assert name not in body, (role, path, name)
            if role not in ("admin", "tutor", "grantee_use", "grantee_manage"):
                assert "Ms Ada" not in body, (role, path)
        templates = {t["name"] for t in client.get("/api/avatar-templates/").json()}
        assert ("Secret template" in templates) == (role in ("admin", "tutor", "other_tutor")), role
        listed = client.get("/api/avatars/list").json()
        assert {a["name"] for a in listed["avatars"]} == sees[role], role
        assert listed["total"] == len(sees[role])
    assert world.client("other_admin").get(f"/api/avatars/list?tutor_id={world.tutor.pk}").json() == {
        "avatars": [],
        "total": 0,
    }
    # Tutors: an admin sees its own, a tutor account its own tutor, grantees none of the owner's.
    names = {role: {t["name"] for t in world.client(role).get("/api/tutors/").json()} for role in ROLES}
    assert names["admin"] == {"Ms Ada", "Mr Ben"}
    assert names["tutor"] == {"Ms Ada"} and names["other_tutor"] == {"Mr Ben"}
    assert names["grantee_use"] == {"Ms Dee"} and names["grantee_manage"] == {"Ms Dee"}


# Endpoints with no object in their path that name one in their query: the rule each
# such parameter follows (the analytics report: 404 for an avatar or tutor a role cannot see).
QUERY_PARAMETER_RULES = {
    ("/api/analytics/usage", "avatar_id"): "view",
    ("/api/analytics/usage", "tutor_id"): "tutor-view",
    ("/api/analytics/usage.csv", "avatar_id"): "view",
    ("/api/analytics/usage.csv", "tutor_id"): "tutor-view",
}
QUERY_RULED_PREFIXES = ("/api/analytics/",)


def test_object_ids_in_queries_answer_each_role_as_its_access_says(world, walk_ids):
    paths = _schema(world.client("admin"))["paths"]
    walked, mismatches = set(), []
    for path, operations in paths.items():
        if not path.startswith(QUERY_RULED_PREFIXES):
            continue
        names = {p["name"] for op in operations.values() for p in op.get("parameters", []) if p["in"] == "query"}
        for name in sorted(names & {"avatar_id", "tutor_id"}):
            assert (path, name) in QUERY_PARAMETER_RULES, f"no access rule for {path}?{name}: add it to the walk"
            walked.add((path, name))
            object_id = world.avatar.pk if name == "avatar_id" else world.tutor.pk
            for role in ROLES:
                response = world.client(role).get(path, {name: object_id})
                got = _denied_as(response) or "ok"
                expected = _expected(role, QUERY_PARAMETER_RULES[(path, name)])
                if got != expected:
                    mismatches.append((role, path, name, expected, got, response.status_code))
                if expected == 404:
                    assert (
                        "Secret" not in response.content.decode() and "secret_avatar" not in response.content.decode()
                    )
    assert walked == set(QUERY_PARAMETER_RULES), "a rule names an endpoint the schema no longer has"
    assert not mismatches, "\n".join(map(str, mismatches))


def test_a_shared_avatar_is_marked_in_the_grantees_list(world):
    for role, permission in (("grantee_use", "use"), ("grantee_manage", "manage"), ("admin", "own"), ("tutor", "own")):
        (row,) = [
            a for a in world.client(role).get("/api/avatars/list").json()["avatars"] if a["name"] == "secret_avatar"
        ]
        assert row["permission"] == permission, role
        assert row["shared"] is (permission != "own"), role
        assert row["owner_name"] == "Ms Ada"


def test_every_endpoint_needs_a_token(client_for, world, walk_ids):
    anonymous = client_for(None)
    for path, operations in _schema(world.client("admin"))["paths"].items():
        if path.startswith(SKIP_PREFIXES):
            continue
        url = re.sub(r"{(\w+)}", lambda m: str({**walk_ids, **NON_OBJECT_PARAMS}[m.group(1)]), path)
        for method in operations:
            if method in ("get", "post", "patch", "put", "delete"):
                assert getattr(anonymous, method)(url).status_code == 401, (method, url)


def test_the_proxy_answers_each_role_as_its_access_says(world):
    for role in ROLES:
        response = world.client(role).post(
            "/api/avatars/webrtc/offer", {"avatar_id": world.avatar.pk, "sdp": "v=0\r\n"}, format="json"
        )
        expected = "ok" if ACCESS[role] else 404  # every grantee may use it
        assert (_denied_as(response) or "ok") == expected, (role, response.status_code, response.content)
        if expected == "ok":  # the avatar is not started: a clear 409, past the permission check
            assert response.status_code == 409, (role, response.content)


# --- WebSockets ---------------------------------------------------------------------------------


def _ws_connect(user, path: str) -> tuple[bool, int | None]:
    """(accepted, close code) of a socket opened with the user's JWT."""
    from channels.testing import WebsocketCommunicator
    from rest_framework_simplejwt.tokens import AccessToken

    from tutor_site.asgi import application

    async def run():
        communicator = WebsocketCommunicator(application, path, subprotocols=[f"bearer.{AccessToken.for_user(user)}"])
        connected, code = await communicator.connect(timeout=10)
        if connected:
            await communicator.disconnect()
        return connected, code

    return async_to_sync(run)()


def test_websocket_connects_answer_each_role_as_its_access_says(transactional_db, world):
    for role in ROLES:
        for kind in ("events", "session"):
            connected, code = _ws_connect(world.users[role], f"/ws/avatars/{world.avatar.pk}/{kind}/")
            if ACCESS[role]:
                assert connected, (role, kind, code)
            else:
                assert not connected and code == 4404, (role, kind, code)


# --- student session tokens ------------------------------------------------------------------


def _ws_connect_token(raw: str, path: str, *, as_query: bool = False, origin: str | None = None):
    """(accepted, close code) of a socket opened with a student session token."""
    from channels.testing import WebsocketCommunicator

    from tutor_site.asgi import application

    async def run():
        headers = [(b"origin", origin.encode())] if origin else []
        if as_query:
            communicator = WebsocketCommunicator(application, f"{path}?token={raw}", headers=headers)
        else:
            communicator = WebsocketCommunicator(application, path, headers=headers, subprotocols=[f"token.{raw}"])
        connected, code = await communicator.connect(timeout=10)
        if connected:
            await communicator.disconnect()
        return connected, code

    return async_to_sync(run)()


def test_a_session_token_opens_nothing_of_the_rest_api(world, walk_ids):
    """Every endpoint but the LiveTalking proxy answers 401 to every token role, whichever
    way the token is given."""
    paths = _schema(world.client("admin"))["paths"]
    checked = 0
    for role in TOKEN_ROLES:
        raw = world.tokens[role]
        as_header, as_bearer, anonymous = world.client(role), world.client(role), world.client(role)
        as_bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        anonymous.credentials()
        for path, operations in paths.items():
            if path.startswith(SKIP_PREFIXES) or path.startswith("/api/avatars/webrtc/"):
                continue
            url = re.sub(r"{(\w+)}", lambda m: str({**walk_ids, **NON_OBJECT_PARAMS}[m.group(1)]), path)
            for method in operations:
                if method not in ("get", "post", "patch", "put", "delete"):
                    continue
                for client, data in ((as_header, {}), (as_bearer, {}), (anonymous, {"token": raw})):
                    response = getattr(client, method)(url, data, format="json")
                    checked += 1
                    assert response.status_code == 401, (role, method, url, response.status_code)
                    assert "Secret" not in response.content.decode()
                response = anonymous.get(f"{url}?token={raw}") if method == "get" else None
                assert response is None or response.status_code == 401, (role, url)
    assert checked >= 4 * 3 * 30


def test_session_tokens_at_the_proxy(world):
    from avatars.models import Avatar

    offer = {"avatar_id": world.avatar.pk, "sdp": "v=0\r\n"}
    expected = {"token_valid": 409, "token_expired": 401, "token_revoked": 401, "token_other_avatar": 404}
    for role in TOKEN_ROLES:
        response = world.client(role).post("/api/avatars/webrtc/offer", offer, format="json")
        assert response.status_code == expected[role], (role, response.content)
        # The token as a field instead of the header: the same answer.
        anonymous = world.client(role)
        anonymous.credentials()
        response = anonymous.post("/api/avatars/webrtc/offer", {**offer, "token": world.tokens[role]}, format="json")
        assert response.status_code == expected[role], (role, response.content)
    # The valid token: past the permission check (the avatar is not started), never another avatar.
    response = world.client("token_valid").post("/api/avatars/webrtc/offer", offer, format="json")
    assert "not started" in response.json()["detail"]
    other = {"avatar_id": world.ben_avatar.pk, "sdp": "v=0\r\n"}
    assert world.client("token_valid").post("/api/avatars/webrtc/offer", other, format="json").status_code == 404
    # A session of another avatar is not found either.
    session = {"sessionid": "no-such-session", "text": "Hello."}
    assert world.client("token_valid").post("/api/avatars/webrtc/human", session, format="json").status_code == 404
    assert Avatar.objects.get(pk=world.avatar.pk).status == "inactive"


def test_session_tokens_at_the_talk_page(world, client, settings):
    settings.TALK_EMBED_ORIGINS = ["https://school.example"]
    for role in TOKEN_ROLES:
        response = client.get(f"/talk/{world.tokens[role]}/")
        assert response["Content-Security-Policy"] == "frame-ancestors 'self' https://school.example"
        assert "X-Frame-Options" not in response  # the CSP decides who may frame it
        if role in ("token_expired", "token_revoked"):
            assert response.status_code == 404, role
            assert b"expired" in response.content or b"revoked" in response.content
            continue
        assert response.status_code == 200, role
        config = json.loads(re.search(rb'id="talk-config"[^>]*>(.*?)</script>', response.content, re.S).group(1))
        target = world.avatar if role == "token_valid" else world.ben_avatar
        assert config["avatarId"] == target.pk and config["canStart"] is False and not config["startUrl"]
        assert config["wsPath"] == f"/ws/avatars/{target.pk}/session/?token={world.tokens[role]}"
        assert b"/admin/" not in response.content  # no link into the admin for students
    assert client.get("/talk/vts_not-a-token/").status_code == 404
    # The admin's talk page keeps X-Frame-Options (it is not embeddable).
    assert client.get(f"/avatars/{world.avatar.pk}/talk/").status_code == 302


def test_session_token_websockets(transactional_db, world, settings):
    settings.TALK_EMBED_ORIGINS = ["https://school.example"]
    session = f"/ws/avatars/{world.avatar.pk}/session/"
    expected = {"token_valid": (True, None), "token_expired": 4401, "token_revoked": 4401, "token_other_avatar": 4404}
    for role in TOKEN_ROLES:
        for as_query in (False, True):
            connected, code = _ws_connect_token(world.tokens[role], session, as_query=as_query)
            if role == "token_valid":
                assert connected, (role, code)
            else:
                assert not connected and code == expected[role], (role, as_query, code)
            # The events socket is never a student's.
            connected, code = _ws_connect_token(
                world.tokens[role], f"/ws/avatars/{world.avatar.pk}/events/", as_query=as_query
            )
            assert not connected and code == 4401, (role, code)
    # An embedding site's page may open the session socket with a token, not anything else.
    raw = world.tokens["token_valid"]
    assert _ws_connect_token(raw, session, origin="https://school.example")[0]
    assert not _ws_connect_token(raw, session, origin="https://evil.example")[0]
    jwt_from_embed = _ws_connect(world.users["admin"], session)  # no Origin: allowed (a script)
    assert jwt_from_embed[0]
