"""An avatar's knowledge base (documents cut into passages the live session can read
aloud) and the record of its live conversations."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class KnowledgeSource(models.TextChoices):
    TEXT = "text", "Text"
    TXT = "txt", "Text file"
    MD = "md", "Markdown file"
    PDF = "pdf", "PDF file"


class KnowledgeDocument(models.Model):
    avatar = models.ForeignKey("avatars.Avatar", on_delete=models.CASCADE, related_name="knowledge_documents")
    title = models.CharField(max_length=200)
    source = models.CharField(max_length=8, choices=KnowledgeSource.choices)
    # The client's file name cleaned of paths and control characters: shown, never opened.
    filename = models.CharField("original file name", max_length=255, blank=True)
    char_count = models.PositiveIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["avatar", "-created_at"], name="knowledge_doc_avatar_recent")]

    def __str__(self):
        return self.title


class KnowledgeChunk(models.Model):
    """A passage of a document: a few whole sentences, readable aloud on their own."""

    document = models.ForeignKey(KnowledgeDocument, on_delete=models.CASCADE, related_name="chunks")
    # The document's avatar again, so that a search reads one avatar's passages without a join.
    avatar = models.ForeignKey("avatars.Avatar", on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()
    text = models.TextField()

    class Meta:
        ordering = ["document_id", "position"]
        constraints = [models.UniqueConstraint(fields=["document", "position"], name="knowledge_chunk_position")]
        indexes = [models.Index(fields=["avatar"], name="knowledge_chunk_avatar")]

    def __str__(self):
        return f"{self.document} #{self.position}"


class Conversation(models.Model):
    """One live session's exchange with an avatar."""

    avatar = models.ForeignKey("avatars.Avatar", on_delete=models.CASCADE, related_name="conversations")
    # Who opened the live session; empty for students who come with a session token.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The student session token it was opened with (user is then empty).
    session_token = models.ForeignKey(
        "avatars.SessionToken", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    session_id = models.CharField(max_length=64, db_index=True)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    turn_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["avatar", "-started_at"], name="conversation_avatar_recent")]

    def __str__(self):
        return f"Conversation {self.pk} with {self.avatar}"


class TurnRole(models.TextChoices):
    STUDENT = "student", "Student"
    AVATAR = "avatar", "Avatar"


# Per answer, in milliseconds from the end of the question: recognised, first token of the
# answer, first audio, first lip-synced frame, and the whole answer.
LATENCY_KEYS = ("asr_ms", "first_token_ms", "first_audio_ms", "first_frame_ms", "total_ms")


class ConversationTurn(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    role = models.CharField(max_length=10, choices=TurnRole.choices)
    text = models.TextField(blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    latency = models.JSONField(null=True, blank=True)
    interrupted = models.BooleanField(default=False)

    class Meta:
        ordering = ["conversation_id", "id"]

    def __str__(self):
        return f"{self.get_role_display()}: {self.text[:60]}"
