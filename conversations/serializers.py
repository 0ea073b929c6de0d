"""What the knowledge and conversation endpoints answer, and the one input serializer of a
new knowledge document (the API and the admin's add form both run it)."""

from rest_framework import serializers

from avatars.serializers import InputSerializer, TextInput, UploadInput

from .documents import SUPPORTED_TEXT


class KnowledgeDocumentCreateSerializer(InputSerializer):
    """`POST /api/avatars/{id}/knowledge`: a file (multipart) or a text (JSON or form)."""

    title = TextInput("title", 200, help_text="Default: the document's first heading, else its file name.")
    text = serializers.CharField(
        required=False, allow_blank=True, help_text="The document's text, when no file is sent."
    )
    file = UploadInput(required=False, help_text=f"A document: {SUPPORTED_TEXT} (UTF-8 text; PDF with text).")

    def validate(self, attrs):
        if attrs.get("file") is None and attrs.get("text") is None:
            raise serializers.ValidationError({"file": f"Send a file ({SUPPORTED_TEXT}) or a text."})
        if attrs.get("file") is not None and attrs.get("text") is not None:
            raise serializers.ValidationError({"text": "Send either a file or a text, not both."})
        return attrs


class KnowledgeDocumentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    avatar_id = serializers.IntegerField()
    title = serializers.CharField()
    source = serializers.CharField(help_text="text, txt, md or pdf")
    filename = serializers.CharField(help_text="The uploaded file's name, for display.")
    char_count = serializers.IntegerField()
    chunk_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class KnowledgePassageSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    text = serializers.CharField()


class KnowledgeDocumentDetailSerializer(KnowledgeDocumentSerializer):
    passages = KnowledgePassageSerializer(source="chunks.all", many=True)


class KnowledgeDocumentListSerializer(serializers.Serializer):
    documents = KnowledgeDocumentSerializer(many=True)
    total = serializers.IntegerField()
    max_documents = serializers.IntegerField()


class ConversationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    avatar_id = serializers.IntegerField()
    user_id = serializers.IntegerField(allow_null=True)
    user_email = serializers.SerializerMethodField()
    session_id = serializers.CharField()
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    turn_count = serializers.IntegerField()

    def get_user_email(self, conversation) -> str | None:
        return conversation.user.email if conversation.user_id else None


class ConversationTurnSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    role = serializers.CharField(help_text="student or avatar")
    text = serializers.CharField()
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    latency = serializers.JSONField(
        allow_null=True, help_text="ms: asr_ms, first_token_ms, first_audio_ms, first_frame_ms, total_ms"
    )
    interrupted = serializers.BooleanField()


class ConversationDetailSerializer(ConversationSerializer):
    turns = ConversationTurnSerializer(source="turns.all", many=True)


class ConversationListSerializer(serializers.Serializer):
    conversations = ConversationSerializer(many=True)
    total = serializers.IntegerField()
