"""Template and batch serializers: the input ones are run by the API, the admin forms and
the command alike (`avatars.serializers.input_validate`); the output ones are what the API
answers. Field rules are the avatar's own (same input fields, same messages)."""

import json

from django.conf import settings
from rest_framework import serializers

from avatars.models import GREETING_MAX_CHARS, PERSONA_MAX_CHARS
from avatars.serializers import (
    ASR_MODEL_HELP,
    GREETING_HELP,
    LANGUAGE_HELP,
    LLM_MODEL_HELP,
    PERSONA_HELP,
    BooleanInput,
    ChoiceInput,
    InputSerializer,
    IntegerInput,
    LanguageInput,
    TextInput,
    UploadInput,
)
from contracts.engines import asr_engine_choices, lipsync_engine_choices, responder_choices, tts_engine_choices

from .models import DOCUMENT_TITLE_MAX_CHARS, TEMPLATE_NAME_MAX_CHARS
from .selectors import template_is_global

NAME_REQUIRED = "A template needs a name."


class TemplateDocumentInput(serializers.Serializer):
    title = TextInput("title", DOCUMENT_TITLE_MAX_CHARS)
    text = serializers.CharField(
        trim_whitespace=True,
        error_messages={"required": "Each document needs a text.", "blank": "Each document needs a text."},
    )

    def validate_text(self, value):
        limit = settings.KNOWLEDGE_MAX_TEXT_CHARS
        if len(value) > limit:
            raise serializers.ValidationError(f"A document has at most {limit} characters (KNOWLEDGE_MAX_TEXT_CHARS).")
        return value


class DocumentsInput(serializers.ListField):
    """A list of {title, text}: JSON, or (multipart) the same list as a JSON text."""

    child = TemplateDocumentInput()

    def to_internal_value(self, data):
        if isinstance(data, list) and len(data) == 1 and isinstance(data[0], str):
            data = data[0]  # a multipart form's one value
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                raise serializers.ValidationError("documents must be a list of {title, text} (JSON).") from None
        documents = super().to_internal_value(data)
        if len(documents) > settings.KNOWLEDGE_MAX_DOCUMENTS:
            raise serializers.ValidationError(
                f"A template has at most {settings.KNOWLEDGE_MAX_DOCUMENTS} documents (KNOWLEDGE_MAX_DOCUMENTS)."
            )
        total = sum(len(doc["text"]) for doc in documents)
        if total > settings.KNOWLEDGE_MAX_AVATAR_CHARS:
            raise serializers.ValidationError(
                f"The documents hold {total} characters, more than an avatar may "
                f"({settings.KNOWLEDGE_MAX_AVATAR_CHARS}, KNOWLEDGE_MAX_AVATAR_CHARS)."
            )
        return [dict(doc) for doc in documents]

    def get_value(self, dictionary):
        # A multipart form gives a text, not a list: take it as is (ListField would split it).
        if hasattr(dictionary, "getlist") and self.field_name in dictionary:
            return dictionary.getlist(self.field_name)
        return super().get_value(dictionary)


class TemplateInputSerializer(InputSerializer):
    """`POST /api/avatar-templates/` and (partial) `PATCH /api/avatar-templates/{id}`."""

    name = serializers.CharField(
        max_length=TEMPLATE_NAME_MAX_CHARS,
        error_messages={
            "required": NAME_REQUIRED,
            "blank": NAME_REQUIRED,
            "null": NAME_REQUIRED,
            "max_length": f"A template name has at most {TEMPLATE_NAME_MAX_CHARS} characters.",
        },
    )
    description = TextInput("description", 5000)
    avatar_model = ChoiceInput("avatar_model", lipsync_engine_choices, help_text="Blank: the first usable engine.")
    tts_model = ChoiceInput("tts_model", tts_engine_choices, help_text="Blank: settings.DEFAULT_TTS_MODEL.")
    timbre = TextInput("timbre", 120, help_text="Voice id of the TTS engine.")
    avatar_blur = BooleanInput(required=False)
    support_clone = BooleanInput(required=False)
    persona = TextInput("persona", PERSONA_MAX_CHARS, help_text=PERSONA_HELP)
    greeting = TextInput("greeting", GREETING_MAX_CHARS, help_text=GREETING_HELP)
    language = LanguageInput(help_text=LANGUAGE_HELP)
    asr_model = ChoiceInput("asr_model", asr_engine_choices, help_text=ASR_MODEL_HELP)
    llm_model = ChoiceInput("llm_model", responder_choices, help_text=LLM_MODEL_HELP)
    voice = UploadInput(required=False, help_text="A reference voice (multipart), used by avatars sent without one.")
    remove_voice = BooleanInput(required=False, help_text="PATCH: drop the reference voice.")
    documents = DocumentsInput(
        required=False, help_text="Knowledge documents [{title, text}], copied into each avatar; PATCH replaces them."
    )

    def validate_name(self, value):
        return value.strip()


class TemplateDocumentSerializer(serializers.Serializer):
    title = serializers.CharField()
    text = serializers.CharField()


class AvatarTemplateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    is_global = serializers.SerializerMethodField(help_text="Shipped or an operator's: visible to everyone.")
    owner_id = serializers.IntegerField(allow_null=True)
    avatar_model = serializers.CharField()
    tts_model = serializers.CharField()
    timbre = serializers.CharField()
    avatar_blur = serializers.BooleanField()
    support_clone = serializers.BooleanField()
    persona = serializers.CharField()
    greeting = serializers.CharField()
    language = serializers.CharField()
    asr_model = serializers.CharField()
    llm_model = serializers.CharField()
    has_voice = serializers.SerializerMethodField()
    documents = TemplateDocumentSerializer(many=True, source="documents.all")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_is_global(self, template) -> bool:
        return template_is_global(template)

    def get_has_voice(self, template) -> bool:
        return bool(template.voice_path)


class AvatarBatchCreateSerializer(InputSerializer):
    """`POST /api/avatars/batch` (multipart), the admin's "Create from template" page and
    `create_avatars --template ID --dir DIR`."""

    template_id = IntegerInput(
        error_messages={"required": "template_id is required.", "invalid": "template_id must be a whole number."}
    )
    tutor_id = IntegerInput(
        error_messages={"required": "tutor_id is required.", "invalid": "tutor_id must be a whole number."}
    )
    prompt_face = serializers.ListField(
        child=UploadInput(),
        allow_empty=False,
        max_length=settings.AVATAR_BATCH_MAX_FILES,
        error_messages={
            "required": "Send one or more videos in prompt_face.",
            "empty": "Send one or more videos in prompt_face.",
            "max_length": f"At most {settings.AVATAR_BATCH_MAX_FILES} videos in one batch (AVATAR_BATCH_MAX_FILES).",
        },
        help_text="The tutor videos, one avatar each.",
    )
    names = serializers.ListField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=True),
        required=False,
        help_text="One name per file (several fields, or one comma-separated); default: from the file names.",
    )

    def validate_names(self, value):
        if len(value) == 1 and "," in value[0]:
            value = value[0].split(",")
        names = [name.strip() for name in value]
        return names if any(names) else []


class AvatarBatchItemSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.CharField(help_text="failed (refused: see detail), processing, ready, error or deleted.")
    avatar_id = serializers.IntegerField(allow_null=True)
    detail = serializers.CharField(help_text="Why it was refused or failed; blank otherwise.")
    filename = serializers.CharField()


class AvatarBatchSerializer(serializers.Serializer):
    batch_id = serializers.IntegerField(source="pk")
    tutor_id = serializers.IntegerField()
    template_id = serializers.IntegerField(allow_null=True)
    template_name = serializers.CharField()
    created_at = serializers.DateTimeField()
    items = AvatarBatchItemSerializer(many=True, source="items.all")
