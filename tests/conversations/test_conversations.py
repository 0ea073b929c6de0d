"""Conversation records: what the live worker writes (services, by id), the history it
reads back, and the API and admin pages that show them."""

import datetime as dt
import time

import pytest
from django.urls import reverse

from contracts.conversation import ChatTurn
from conversations import services
from conversations.selectors import conversation_history
from tutor_site.exceptions import InvalidInput, ObjectNotFound

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(avatar, admin_user):
    conversation = services.conversation_open(avatar_id=avatar.pk, user_id=admin_user.pk, session_id="sess-1")
    now = time.time()
    question = services.conversation_turn_add(
        conversation.pk, role="student", text="How many legs does a spider have?", started_at=now - 3, ended_at=now - 2
    )
    answer = services.conversation_turn_add(
        conversation.pk,
        role="avatar",
        text="Every spider has eight legs.",
        started_at=dt.datetime.now(dt.UTC),
        latency={"asr_ms": 120, "first_token_ms": 35.5},
    )
    services.conversation_turn_update(
        answer.pk, ended_at=now, latency={"first_audio_ms": 180, "first_frame_ms": 240, "total_ms": 1900}
    )
    return conversation, question, answer


def test_the_worker_records_a_conversation(conversation):
    conversation, question, answer = conversation
    conversation.refresh_from_db()
    assert conversation.turn_count == 2 and conversation.ended_at is None
    answer.refresh_from_db()
    assert answer.latency == {
        "asr_ms": 120.0,
        "first_token_ms": 35.5,
        "first_audio_ms": 180.0,
        "first_frame_ms": 240.0,
        "total_ms": 1900.0,
    }
    assert answer.ended_at is not None and not answer.interrupted
    services.conversation_turn_update(answer.pk, interrupted=True, latency={"total_ms": None})
    answer.refresh_from_db()
    assert answer.interrupted and "total_ms" not in answer.latency
    services.conversation_close(conversation.pk)
    conversation.refresh_from_db()
    ended = conversation.ended_at
    assert ended is not None
    services.conversation_close(conversation.pk)
    conversation.refresh_from_db()
    assert conversation.ended_at == ended


def test_history_is_the_last_turns_oldest_first(avatar):
    conversation = services.conversation_open(avatar_id=avatar.pk, user_id=None, session_id="s")
    for number in range(5):
        role = "student" if number % 2 == 0 else "avatar"
        services.conversation_turn_add(conversation.pk, role=role, text=f"turn {number}", started_at=time.time())
    services.conversation_turn_add(conversation.pk, role="avatar", text="", started_at=time.time())  # nothing said
    assert conversation_history(conversation.pk, 3) == [
        ChatTurn("student", "turn 2"),
        ChatTurn("avatar", "turn 3"),
        ChatTurn("student", "turn 4"),
    ]
    assert len(conversation_history(conversation.pk)) == 5  # CONVERSATION_MEMORY_TURNS is 6
    assert conversation_history(conversation.pk, 0) == []
    assert conversation_history(999999, 3) == []


def test_the_services_refuse_bad_input(avatar):
    with pytest.raises(ObjectNotFound):
        services.conversation_open(avatar_id=999999, user_id=None, session_id="s")
    with pytest.raises(InvalidInput, match="session_id"):
        services.conversation_open(avatar_id=avatar.pk, user_id=None, session_id="")
    conversation = services.conversation_open(avatar_id=avatar.pk, user_id=None, session_id="s")
    with pytest.raises(InvalidInput, match="role must be one of: student, avatar"):
        services.conversation_turn_add(conversation.pk, role="teacher", text="x", started_at=time.time())
    with pytest.raises(InvalidInput, match="Unknown latency figures: fps"):
        services.conversation_turn_add(
            conversation.pk, role="avatar", text="x", started_at=time.time(), latency={"fps": 25}
        )
    with pytest.raises(InvalidInput, match="started_at"):
        services.conversation_turn_add(conversation.pk, role="avatar", text="x", started_at="yesterday")
    with pytest.raises(ObjectNotFound):
        services.conversation_turn_add(999999, role="avatar", text="x", started_at=time.time())
    turn = services.conversation_turn_add(conversation.pk, role="avatar", text="x", started_at=time.time())
    with pytest.raises(InvalidInput, match="cannot be changed: role"):
        services.conversation_turn_update(turn.pk, role="student")
    with pytest.raises(InvalidInput, match="milliseconds"):
        services.conversation_turn_update(turn.pk, latency={"asr_ms": -1})
    with pytest.raises(ObjectNotFound):
        services.conversation_turn_update(999999, text="x")
    conversation.refresh_from_db()
    assert conversation.turn_count == 1  # the refused turns were not counted


def test_api_lists_and_shows_conversations(api, avatar, conversation):
    conversation, _question, _answer = conversation
    later = services.conversation_open(avatar_id=avatar.pk, user_id=None, session_id="sess-2")
    body = api.get(f"/api/avatars/{avatar.pk}/conversations").json()
    assert body["total"] == 2
    assert [c["id"] for c in body["conversations"]] == [later.pk, conversation.pk]  # newest first
    first = body["conversations"][1]
    assert (first["turn_count"], first["session_id"], first["user_email"]) == (2, "sess-1", "ada@school.test")
    assert body["conversations"][0]["user_id"] is None
    assert api.get(f"/api/avatars/{avatar.pk}/conversations?limit=1&offset=1").json()["conversations"][0]["id"] == (
        conversation.pk
    )
    detail = api.get(f"/api/avatars/{avatar.pk}/conversations/{conversation.pk}").json()
    assert [(t["role"], t["text"]) for t in detail["turns"]] == [
        ("student", "How many legs does a spider have?"),
        ("avatar", "Every spider has eight legs."),
    ]
    assert detail["turns"][1]["latency"]["first_frame_ms"] == 240
    assert detail["turns"][0]["ended_at"] is not None and detail["turns"][0]["interrupted"] is False
    assert api.get(f"/api/avatars/{avatar.pk}/conversations/999999").status_code == 404
    assert api.get("/api/avatars/999999/conversations").status_code == 404


def test_admin_shows_own_conversations_read_only(client, admin_user, other_admin, avatar, other_avatar, conversation):
    conversation, _q, _a = conversation
    theirs = services.conversation_open(avatar_id=other_avatar.pk, user_id=None, session_id="secret-session")
    client.force_login(admin_user)
    page = client.get(reverse("admin:conversations_conversation_changelist"))
    assert page.status_code == 200
    assert list(page.context["cl"].result_list) == [conversation]
    page = client.get(reverse("admin:conversations_conversation_change", args=[conversation.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Every spider has eight legs." in html and "first_frame_ms 240" in html
    assert 'name="session_id"' not in html  # read-only
    assert client.get(reverse("admin:conversations_conversation_add")).status_code == 403
    response = client.get(reverse("admin:conversations_conversation_change", args=[theirs.pk]))
    assert response.status_code in (302, 404)
    assert "secret-session" not in response.content.decode()


def test_admin_manages_own_knowledge(client, admin_user, avatar, other_avatar):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from conversations.models import KnowledgeDocument
    from tests.conversations import corpus

    theirs = services.knowledge_document_add(other_avatar, title="Bob secret notes", text="Quarks are small.")
    client.force_login(admin_user)
    add = reverse("admin:conversations_knowledgedocument_add")
    page = client.get(add + f"?avatar={avatar.pk}")
    assert page.status_code == 200
    assert "bob_tutor" not in page.content.decode() and "Bob" not in page.content.decode()
    response = client.post(add, {"avatar": avatar.pk, "title": "Plants", "text": corpus.PLANTS})
    assert response.status_code == 302, response.content.decode()[:3000]
    response = client.post(
        add, {"avatar": avatar.pk, "title": "", "file": SimpleUploadedFile("spiders.md", corpus.SPIDERS.encode())}
    )
    assert response.status_code == 302
    response = client.post(add, {"avatar": avatar.pk, "file": SimpleUploadedFile("bad.txt", b"\xff\xfe\x00bad")})
    assert response.status_code == 200 and "UTF-16" in response.content.decode()
    response = client.post(add, {"avatar": other_avatar.pk, "text": "Sneaky."})
    assert (
        response.status_code == 200
        and not KnowledgeDocument.objects.filter(avatar=other_avatar).exclude(pk=theirs.pk).exists()
    )
    mine = list(KnowledgeDocument.objects.filter(avatar=avatar).order_by("id"))
    assert [d.title for d in mine] == ["Plants", "Spiders"]
    page = client.get(reverse("admin:conversations_knowledgedocument_changelist"))
    assert list(page.context["cl"].result_list) == mine[::-1]
    page = client.get(reverse("admin:conversations_knowledgedocument_change", args=[mine[0].pk]))
    assert page.status_code == 200 and "Leaves make food" in page.content.decode()
    assert client.get(reverse("admin:conversations_knowledgedocument_change", args=[theirs.pk])).status_code in (
        302,
        404,
    )
    response = client.post(reverse("admin:conversations_knowledgedocument_delete", args=[mine[0].pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not KnowledgeDocument.objects.filter(pk=mine[0].pk).exists()
    response = client.post(reverse("admin:conversations_knowledgedocument_delete", args=[theirs.pk]), {"post": "yes"})
    assert KnowledgeDocument.objects.filter(pk=theirs.pk).exists()
