"""Reads of knowledge and conversations.

For people (API, admin), everything goes through the avatar's selector
(`avatars.selectors.avatar_get` / `avatar_queryset_for`) with the access level asked:
reading knowledge and conversations needs `use`, adding or deleting documents `manage`.
An avatar the user cannot see is a 404 whatever the role (its documents and
conversations too); one it sees without the level is a 403. The owner side sees every
conversation of its avatars, a grantee only the sessions it opened. The live worker, which
was authorised when the session opened, reads by id (`knowledge_search`,
`conversation_history`).
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet

from avatars.selectors import avatar_get, avatar_queryset_for, avatar_sessions_all_visible
from contracts.conversation import ChatTurn, Passage
from tutor_site.exceptions import ObjectNotFound
from tutors.models import User

from .models import Conversation, ConversationTurn, KnowledgeChunk, KnowledgeDocument
from .retrieval import IndexedPassage, index_cache


def _as_id(value, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ObjectNotFound(f"{what} {value} not found.") from None


# --- knowledge -----------------------------------------------------------------------------


def _avatar_ids(user: User, need: str) -> QuerySet:
    return avatar_queryset_for(user, need).values("pk")


def knowledge_document_queryset_for(user: User, need: str = "use") -> QuerySet[KnowledgeDocument]:
    """Documents of the avatars a user may `need` (the admin's list: use)."""
    return KnowledgeDocument.objects.filter(avatar__in=_avatar_ids(user, need)).select_related("avatar")


def knowledge_document_list(user: User, avatar_id) -> QuerySet[KnowledgeDocument]:
    """An avatar's documents, newest first."""
    avatar = avatar_get(user, avatar_id, "use")
    return avatar.knowledge_documents.order_by("-created_at", "-id")


def knowledge_avatar_get(user: User, avatar_id):
    """The avatar whose knowledge `user` may change (add a document)."""
    return avatar_get(user, avatar_id, "manage")


def knowledge_document_get(user: User, avatar_id, document_id, need: str = "use") -> KnowledgeDocument:
    """One of an avatar's documents: `need` is use to read it, manage to delete it."""
    avatar = avatar_get(user, avatar_id, need)
    try:
        return avatar.knowledge_documents.get(pk=_as_id(document_id, "Document"))
    except KnowledgeDocument.DoesNotExist:
        raise ObjectNotFound(f"Document {document_id} of avatar {avatar_id} not found.") from None


def knowledge_document_get_for(user: User, document_id) -> KnowledgeDocument:
    """A document by its id alone (the admin's change page)."""
    try:
        return knowledge_document_queryset_for(user).get(pk=_as_id(document_id, "Document"))
    except KnowledgeDocument.DoesNotExist:
        raise ObjectNotFound(f"Document {document_id} not found.") from None


def _knowledge_passages(avatar_id: int) -> list[IndexedPassage]:
    rows = (
        KnowledgeChunk.objects.filter(avatar_id=avatar_id)
        .order_by("document_id", "position")
        .values_list("document_id", "document__title", "text")
    )
    return [IndexedPassage(document_id, title, text) for document_id, title, text in rows]


def knowledge_search(avatar_id: int, query: str, limit: int | None = None) -> list[Passage]:
    """The avatar's passages that answer `query`, best first, at most `limit`
    (default settings.CONVERSATION_PASSAGES); an empty list when none is relevant (see
    `conversations.retrieval` for the score and its threshold). For the live worker, which
    has authorised the session: no user check here."""
    limit = settings.CONVERSATION_PASSAGES if limit is None else int(limit)
    query = (query or "")[: settings.CONVERSATION_MAX_QUESTION_CHARS]
    if limit <= 0 or not query.strip():
        return []
    # Count, last id and last time change with every document added or deleted.
    signature = tuple(
        KnowledgeDocument.objects.filter(avatar_id=avatar_id)
        .aggregate(count=Count("id"), last=Max("id"), changed=Max("created_at"))
        .values()
    )
    if signature[0] == 0:
        return []
    index = index_cache.get(avatar_id, signature, lambda: _knowledge_passages(avatar_id))
    return index.search(query, limit)


# --- conversations -------------------------------------------------------------------------


def _conversations_of(user: User, avatar) -> QuerySet[Conversation]:
    conversations = avatar.conversations.select_related("user")
    return conversations if avatar_sessions_all_visible(avatar) else conversations.filter(user=user)


def conversation_list(user: User, avatar_id) -> QuerySet[Conversation]:
    """An avatar's conversations the user may read, newest first."""
    avatar = avatar_get(user, avatar_id, "use")
    return _conversations_of(user, avatar).order_by("-started_at", "-id")


def conversation_queryset_for(user: User) -> QuerySet[Conversation]:
    """The conversations a user may read (the admin's list): all of the avatars it owns,
    its own sessions with avatars shared with it."""
    return Conversation.objects.filter(
        Q(avatar__in=_avatar_ids(user, "own")) | Q(avatar__in=_avatar_ids(user, "use"), user=user)
    ).select_related("avatar", "user")


def conversation_get(user: User, avatar_id, conversation_id) -> Conversation:
    avatar = avatar_get(user, avatar_id, "use")
    try:
        return _conversations_of(user, avatar).get(pk=_as_id(conversation_id, "Conversation"))
    except Conversation.DoesNotExist:
        raise ObjectNotFound(f"Conversation {conversation_id} of avatar {avatar_id} not found.") from None


def conversation_get_for(user: User, conversation_id) -> Conversation:
    """A conversation by its id alone (the admin's page)."""
    try:
        return conversation_queryset_for(user).get(pk=_as_id(conversation_id, "Conversation"))
    except Conversation.DoesNotExist:
        raise ObjectNotFound(f"Conversation {conversation_id} not found.") from None


def conversation_history(conversation_id: int, limit: int | None = None) -> list[ChatTurn]:
    """The last `limit` turns (default settings.CONVERSATION_MEMORY_TURNS), oldest first,
    as the responder's memory. Turns without text are left out. For the live worker."""
    limit = settings.CONVERSATION_MEMORY_TURNS if limit is None else int(limit)
    if limit <= 0:
        return []
    rows = list(
        ConversationTurn.objects.filter(conversation_id=conversation_id)
        .exclude(text="")
        .order_by("-id")
        .values_list("role", "text")[:limit]
    )
    return [ChatTurn(role=role, text=text) for role, text in reversed(rows)]
