"""Writes of the conversations app: an avatar's knowledge documents and the record of its
live conversations (its conversation settings are avatar fields: `avatars.services`).

People's requests arrive here with objects their selector already returned (so tenancy is
decided); the live worker calls the conversation functions with ids, after it authorised
the session.
"""

from __future__ import annotations

import datetime as dt
import numbers

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from avatars.models import Avatar
from avatars.services import UploadSource
from tutor_site.exceptions import InvalidInput, ObjectNotFound

from .documents import document_extract, filename_clean, passages_make
from .models import LATENCY_KEYS, Conversation, ConversationTurn, KnowledgeChunk, KnowledgeDocument, TurnRole

# A turn's text is what was said; past this it is cut (a runaway answer is still recorded).
TURN_MAX_CHARS = 20_000
SESSION_ID_MAX_CHARS = 64
TITLE_MAX_CHARS = 200


# --- knowledge documents -------------------------------------------------------------------


def _upload_read(upload: UploadSource) -> bytes:
    """The file's bytes, refused past KNOWLEDGE_MAX_FILE_MB as counted here (not as declared)."""
    limit = settings.KNOWLEDGE_MAX_FILE_MB * 1024 * 1024
    with open(upload.path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise InvalidInput(
            f"The file is too large: more than {settings.KNOWLEDGE_MAX_FILE_MB} MB. Split it into smaller documents.",
            field="file",
            extra={"max_file_mb": settings.KNOWLEDGE_MAX_FILE_MB},
        )
    return data


def _documents_limit_check(avatar_id: int) -> None:
    limit = settings.KNOWLEDGE_MAX_DOCUMENTS
    if KnowledgeDocument.objects.filter(avatar_id=avatar_id).count() >= limit:
        raise InvalidInput(
            f"This avatar already has {limit} documents, the most it may have; delete one to add another.",
            extra={"max_documents": limit},
        )


def _knowledge_size_check(avatar_id: int, adding: int) -> None:
    """The whole knowledge base of an avatar is indexed in the live worker's memory (and
    rebuilt there after each change): its text is bounded as a whole too."""
    limit = settings.KNOWLEDGE_MAX_AVATAR_CHARS
    held = KnowledgeDocument.objects.filter(avatar_id=avatar_id).aggregate(total=Sum("char_count"))["total"] or 0
    if held + adding > limit:
        raise InvalidInput(
            f"This avatar's knowledge would hold {held + adding} characters, more than {limit} "
            "(KNOWLEDGE_MAX_AVATAR_CHARS); delete a document or send a shorter one.",
            extra={"max_avatar_chars": limit},
        )


def knowledge_document_add(
    avatar: Avatar, *, title: str = "", text: str | None = None, file: UploadSource | None = None
) -> KnowledgeDocument:
    """Add a document to the avatar's knowledge: an uploaded .txt, .md or .pdf (`file`) or
    `text` as is (`KnowledgeDocumentCreateSerializer` validated that exactly one is given).
    Its text is extracted and cut into passages; the document and its passages are written
    together, or nothing is."""
    if (file is None) == (text is None):
        raise InvalidInput("Send either a file (.txt, .md or .pdf) or a text.", field="file")
    _documents_limit_check(avatar.pk)  # before reading a large upload
    if file is not None:
        filename = filename_clean(file.filename)
        extracted = document_extract(_upload_read(file), filename=file.filename)
    else:
        filename = ""
        extracted = document_extract(text=text)
    passages = passages_make(extracted.text)
    title = (title or "").strip() or extracted.title or (passages[0][:80] if passages else "Untitled")
    with transaction.atomic():
        Avatar.objects.select_for_update().filter(pk=avatar.pk).first()  # one add at a time per avatar
        _documents_limit_check(avatar.pk)
        _knowledge_size_check(avatar.pk, len(extracted.text))
        document = KnowledgeDocument.objects.create(
            avatar=avatar,
            title=title[:TITLE_MAX_CHARS],
            source=extracted.source,
            filename=filename,
            char_count=len(extracted.text),
            chunk_count=len(passages),
        )
        KnowledgeChunk.objects.bulk_create(
            [
                KnowledgeChunk(document=document, avatar=avatar, position=position, text=passage)
                for position, passage in enumerate(passages)
            ],
            batch_size=500,
        )
    return document


def knowledge_document_delete(document: KnowledgeDocument) -> None:
    """Delete a document and its passages (the next search no longer finds them)."""
    document.delete()


# --- conversation records (the live worker) -----------------------------------------------


def _when(value, field: str) -> dt.datetime:
    """A time given as an aware or naive datetime, or as seconds since the epoch."""
    if isinstance(value, dt.datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    raise InvalidInput(f"{field} must be a datetime or seconds since the epoch.", field=field)


def _latency(value, current: dict | None = None) -> dict | None:
    """Latency figures in milliseconds, merged into the turn's current ones."""
    if value is None:
        return current
    if not isinstance(value, dict):
        raise InvalidInput("latency must be a mapping of figures in milliseconds.", field="latency")
    unknown = sorted(set(value) - set(LATENCY_KEYS))
    if unknown:
        raise InvalidInput(
            f"Unknown latency figures: {', '.join(unknown)}; known: {', '.join(LATENCY_KEYS)}.", field="latency"
        )
    merged = dict(current or {})
    for key, figure in value.items():
        if figure is None:
            merged.pop(key, None)
            continue
        if isinstance(figure, bool) or not isinstance(figure, numbers.Real) or figure < 0:
            raise InvalidInput(f"latency {key} must be a number of milliseconds (>= 0).", field="latency")
        merged[key] = round(float(figure), 1)
    return merged or None


def _text(text) -> str:
    return str(text or "").strip()[:TURN_MAX_CHARS]


def conversation_open(*, avatar_id: int, user_id: int | None, session_id: str) -> Conversation:
    """Start recording a live session's conversation with the avatar."""
    session_id = str(session_id or "").strip()
    if not session_id or len(session_id) > SESSION_ID_MAX_CHARS:
        raise InvalidInput(f"session_id must be 1 to {SESSION_ID_MAX_CHARS} characters.", field="session_id")
    if not Avatar.objects.filter(pk=avatar_id).exists():
        raise ObjectNotFound(f"Avatar {avatar_id} not found.")
    return Conversation.objects.create(avatar_id=avatar_id, user_id=user_id, session_id=session_id)


def conversation_session_token_set(conversation_id: int, token_id: int) -> None:
    """The conversation was opened with this student session token (its user stays empty)."""
    Conversation.objects.filter(pk=conversation_id).update(session_token_id=token_id)


def conversation_turn_add(
    conversation_id: int,
    *,
    role: str,
    text: str,
    started_at,
    ended_at=None,
    latency: dict | None = None,
    interrupted: bool = False,
) -> ConversationTurn:
    """Record what the student asked or the avatar answered. Times are datetimes or epoch
    seconds; `latency` holds the answer's figures in ms (`models.LATENCY_KEYS`)."""
    if role not in TurnRole.values:
        raise InvalidInput(f"role must be one of: {', '.join(TurnRole.values)}.", field="role")
    fields = {
        "role": role,
        "text": _text(text),
        "started_at": _when(started_at, "started_at"),
        "ended_at": None if ended_at is None else _when(ended_at, "ended_at"),
        "latency": _latency(latency),
        "interrupted": bool(interrupted),
    }
    with transaction.atomic():
        if not Conversation.objects.filter(pk=conversation_id).update(turn_count=F("turn_count") + 1):
            raise ObjectNotFound(f"Conversation {conversation_id} not found.")
        return ConversationTurn.objects.create(conversation_id=conversation_id, **fields)


TURN_UPDATABLE = ("text", "ended_at", "latency", "interrupted")


def conversation_turn_update(turn_id: int, **fields) -> ConversationTurn:
    """Complete a turn: its final text, end, latency figures (merged into those recorded:
    None removes one) or interruption."""
    unknown = sorted(set(fields) - set(TURN_UPDATABLE))
    if unknown:
        raise InvalidInput(
            f"These turn fields cannot be changed: {', '.join(unknown)}; changeable: {', '.join(TURN_UPDATABLE)}."
        )
    with transaction.atomic():
        turn = ConversationTurn.objects.select_for_update().filter(pk=turn_id).first()
        if turn is None:
            raise ObjectNotFound(f"Turn {turn_id} not found.")
        if "text" in fields:
            turn.text = _text(fields["text"])
        if "ended_at" in fields:
            turn.ended_at = None if fields["ended_at"] is None else _when(fields["ended_at"], "ended_at")
        if "latency" in fields:
            turn.latency = _latency(fields["latency"], turn.latency)
        if "interrupted" in fields:
            turn.interrupted = bool(fields["interrupted"])
        turn.save(update_fields=[key for key in TURN_UPDATABLE if key in fields])
    return turn


def conversation_close(conversation_id: int) -> None:
    """The live session ended (a second call keeps the first end)."""
    Conversation.objects.filter(pk=conversation_id, ended_at__isnull=True).update(ended_at=timezone.now())
