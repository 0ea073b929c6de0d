"""Output serializers (what the API answers) and input serializers (the one place every
write's fields are validated: the API views, the admin forms and the batch command all
run the same input serializer, then call the service with `validated_data`)."""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from contracts.engines import asr_engine_choices, lipsync_engine_choices, responder_choices, tts_engine_choices
from tutor_site.exceptions import InvalidInput

from .models import AVATAR_NAME_VALIDATOR, GREETING_MAX_CHARS, LANGUAGE_PATTERN, PERSONA_MAX_CHARS
from .services import UploadSource

NAME_REQUIRED = "An avatar needs a name (letters, digits, '_' and '-')."
TRUE_TEXTS = ("1", "true", "yes", "on")
FALSE_TEXTS = ("0", "false", "no", "off", "")


# --- input fields ----------------------------------------------------------------------------


class BooleanInput(serializers.BooleanField):
    """The one boolean parser of every input: true/false, 1/0, yes/no, on/off (any case);
    blank and null are false."""

    def validate_empty_values(self, data):
        if data is None:
            return True, False
        return super().validate_empty_values(data)

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        text = str(data).strip().lower()
        if text in TRUE_TEXTS:
            return True
        if text in FALSE_TEXTS:
            return False
        raise serializers.ValidationError(f"{self.field_name} must be true or false.")


class IntegerInput(serializers.IntegerField):
    """An integer where a blank form value counts as not given."""

    def validate_empty_values(self, data):
        return super().validate_empty_values(empty if data == "" else data)


class TextInput(serializers.CharField):
    """Optional text, trimmed, at most `max_length` characters; null is blank."""

    def __init__(self, name: str, max_length: int, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(
            allow_blank=True,
            max_length=max_length,
            error_messages={"max_length": f"{name} has at most {max_length} characters."},
            **kwargs,
        )

    def validate_empty_values(self, data):
        return super().validate_empty_values("" if data is None else data)


class ChoiceInput(serializers.ChoiceField):
    """An optional engine name; blank means the default."""

    def __init__(self, name: str, choices, **kwargs):
        choices = choices() if callable(choices) else choices
        valid = ", ".join(str(value) for value, _label in choices)
        super().__init__(
            choices,
            required=False,
            allow_blank=True,
            allow_null=True,
            error_messages={"invalid_choice": f"Unknown {name} '{{input}}'; choose one of: {valid}."},
            **kwargs,
        )

    def run_validation(self, data=serializers.empty):
        # null means the default, as blank does (a PATCH with null sets the default again).
        return "" if data is None else super().run_validation(data)


class LanguageInput(serializers.RegexField):
    """A BCP-47-like language tag, written the usual way ("en", "en-GB", "zh-Hans");
    blank means the default ("en")."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        message = "language must be a language code such as 'en', 'en-GB' or 'pt-BR' (BCP 47)."
        super().__init__(
            LANGUAGE_PATTERN,
            max_length=16,
            allow_blank=True,
            error_messages={"invalid": message, "max_length": message},
            **kwargs,
        )

    def validate_empty_values(self, data):
        return super().validate_empty_values("" if data is None else data)

    def run_validation(self, data=empty):
        return super().run_validation(data) or "en"

    def to_internal_value(self, data):
        tag = super().to_internal_value(data).strip()
        language, *subtags = tag.split("-")
        # Case conventions of BCP 47: language lower, script title, region upper.
        written = [language.lower()]
        for subtag in subtags:
            if len(subtag) == 4 and subtag.isalpha():
                written.append(subtag.title())
            elif len(subtag) == 2 and subtag.isalpha():
                written.append(subtag.upper())
            else:
                written.append(subtag.lower())
        return "-".join(written)


@extend_schema_field(OpenApiTypes.BINARY)
class UploadInput(serializers.Field):
    """An uploaded file (API, admin) or a local file (commands), as the `UploadSource` the
    services take. Its content is probed by the service, not here."""

    default_error_messages = {"invalid": "Send a file (multipart/form-data) in this field."}

    def validate_empty_values(self, data):
        return super().validate_empty_values(empty if data in ("", None) else data)

    def to_internal_value(self, data):
        if isinstance(data, UploadSource):
            return data
        temporary_path = getattr(data, "temporary_file_path", None)
        if temporary_path is None or not getattr(data, "name", ""):
            self.fail("invalid")
        return UploadSource(path=temporary_path(), filename=data.name)

    def to_representation(self, value):
        return getattr(value, "filename", None)


# --- running an input serializer -------------------------------------------------------------


class InputSerializer(serializers.Serializer):
    """Refuses fields it does not declare, with one message naming them."""

    def unknown_fields_message(self, unknown: list[str]) -> str:
        return f"Unknown fields: {', '.join(unknown)}."

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({unknown[0]: [self.unknown_fields_message(unknown)]})
        return super().to_internal_value(data)


def input_errors(errors) -> dict[str, list[str]]:
    """A serializer's errors as {field: [message, ...]} (None: not about one field)."""
    flat: dict = {}
    items = errors.items() if isinstance(errors, dict) else [(None, errors)]
    for field, messages in items:
        if field in ("non_field_errors", "detail"):
            field = None
        if not isinstance(messages, (list, tuple)):
            messages = [messages]
        flat.setdefault(field, []).extend(str(m) for m in messages)
    return flat


def input_validate(serializer_class, data, *, partial: bool = False) -> dict:
    """The serializer's validated data, or `InvalidInput` (400) naming the first wrong field,
    with every field's errors in `errors`."""
    serializer = serializer_class(data=data, partial=partial)
    if serializer.is_valid():
        return dict(serializer.validated_data)
    errors = input_errors(serializer.errors)
    field, messages = next(iter(errors.items()))
    raise InvalidInput(
        messages[0], field=field, extra={"errors": {key or "non_field_errors": value for key, value in errors.items()}}
    )


# --- output ----------------------------------------------------------------------------------


class ProgressSerializer(serializers.Serializer):
    stage = serializers.CharField(source="progress_stage")
    percent = serializers.IntegerField(source="progress_percent")
    message = serializers.CharField(source="progress_message")


class ServingWorkerSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The live lip-sync worker serving the avatar.")
    device = serializers.CharField(help_text="cpu or cuda:N.")
    reason = serializers.CharField(help_text="Why placement chose this worker.")


class AvatarSerializer(serializers.Serializer):
    """The contract's avatar fields plus processing progress."""

    id = serializers.IntegerField()
    tutor_id = serializers.IntegerField()
    name = serializers.CharField()
    display_name = serializers.CharField()
    description = serializers.CharField()
    avatar_model = serializers.CharField()
    tts_model = serializers.CharField()
    timbre = serializers.CharField()
    avatar_blur = serializers.BooleanField()
    support_clone = serializers.BooleanField()
    status = serializers.CharField()
    persona = serializers.CharField()
    greeting = serializers.CharField()
    language = serializers.CharField()
    asr_model = serializers.CharField()
    llm_model = serializers.CharField()
    preview_image_path = serializers.CharField()
    preview_url = serializers.SerializerMethodField()
    video_path = serializers.CharField()
    audio_path = serializers.CharField()
    engine_url = serializers.CharField()
    serving_worker = serializers.SerializerMethodField()
    progress = ProgressSerializer(source="*")
    error_message = serializers.CharField()
    task_id = serializers.CharField()
    frame_count = serializers.IntegerField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    duration_seconds = serializers.FloatField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field(ServingWorkerSerializer(allow_null=True))
    def get_serving_worker(self, avatar) -> dict | None:
        """Where the started avatar runs (null when it is not started)."""
        if avatar.status != "active" or not avatar.serving_worker:
            return None
        return {"name": avatar.serving_worker, "device": avatar.serving_device, "reason": avatar.serving_reason}

    def get_preview_url(self, avatar) -> str | None:
        if not avatar.preview_image_path:
            return None
        return reverse("avatar-preview", args=[avatar.pk])

    # The caller's access (avatars.selectors): on rows read through the selector (list, detail).
    shared = serializers.SerializerMethodField(help_text="Shared with the caller by its owner.")
    permission = serializers.SerializerMethodField(help_text="own, manage or use.")
    owner_name = serializers.SerializerMethodField(help_text="The owning tutor's name.")

    def get_shared(self, avatar) -> bool | None:
        level = getattr(avatar, "access_level", None)
        return None if level is None else level != "own"

    def get_permission(self, avatar) -> str | None:
        return getattr(avatar, "access_level", None)

    def get_owner_name(self, avatar) -> str | None:
        return getattr(avatar, "owner_name", None)

    def to_representation(self, avatar):
        body = super().to_representation(avatar)
        if getattr(avatar, "access_level", None) is None:  # a row a service returned: not known here
            for key in ("shared", "permission", "owner_name"):
                body.pop(key, None)
        return body


class AvatarListSerializer(serializers.Serializer):
    avatars = AvatarSerializer(many=True)
    total = serializers.IntegerField()


# The avatar's set-up beside its tutor, name and files: what the API's create, the admin's
# add form and the batch command's columns share.
AVATAR_SETUP_FIELDS = (
    "display_name", "description", "avatar_model", "tts_model", "timbre", "avatar_blur", "support_clone",
)  # fmt: skip
# The avatar in conversation, set at create and by PATCH (`services.avatar_create`,
# `services.avatar_update`); read by the live session when it opens.
AVATAR_CONVERSATION_FIELDS = ("persona", "greeting", "language", "asr_model", "llm_model")


PERSONA_HELP = "Who the tutor is and how they teach."
GREETING_HELP = "Said when a live session opens."
LANGUAGE_HELP = "BCP 47 language code; default 'en'."
ASR_MODEL_HELP = "Speech recognition engine (GET /api/avatars/asr-models); blank: the default."
LLM_MODEL_HELP = "What answers the student (GET /api/avatars/llm-models); blank: the default."


class AvatarCreateSerializer(InputSerializer):
    """`POST /api/avatars/create`, the admin's add form and each row of `create_avatars`.

    Validates every field on its own; `avatar_create` then does the checks that need the
    database or the media (tutor visible, name free, engines usable, uploads probed)."""

    tutor_id = IntegerInput(
        error_messages={"required": "tutor_id is required.", "invalid": "tutor_id must be a whole number."}
    )
    name = serializers.CharField(
        max_length=64,
        validators=[AVATAR_NAME_VALIDATOR],
        error_messages={
            "required": NAME_REQUIRED,
            "blank": NAME_REQUIRED,
            "null": NAME_REQUIRED,
            "max_length": "An avatar name has at most 64 characters.",
        },
    )
    display_name = TextInput("display_name", 120, help_text="Default: the name.")
    description = TextInput("description", 5000)
    avatar_model = ChoiceInput("avatar_model", lipsync_engine_choices, help_text="Default: the first usable engine.")
    tts_model = ChoiceInput("tts_model", tts_engine_choices, help_text="Default: settings.DEFAULT_TTS_MODEL.")
    timbre = TextInput("timbre", 120, help_text="Voice id of the TTS engine.")
    avatar_blur = BooleanInput(required=False, default=False)
    support_clone = BooleanInput(required=False, default=False)
    prompt_face = UploadInput(
        error_messages={"required": "prompt_face (the tutor's video) is required."}, help_text="The tutor's video."
    )
    prompt_voice = UploadInput(required=False, help_text="A voice recording, for cloning.")
    # The conversation fields (AVATAR_CONVERSATION_FIELDS).
    persona = TextInput("persona", PERSONA_MAX_CHARS, help_text=PERSONA_HELP)
    greeting = TextInput("greeting", GREETING_MAX_CHARS, help_text=GREETING_HELP)
    language = LanguageInput(help_text=LANGUAGE_HELP)
    asr_model = ChoiceInput("asr_model", asr_engine_choices, help_text=ASR_MODEL_HELP)
    llm_model = ChoiceInput("llm_model", responder_choices, help_text=LLM_MODEL_HELP)
    template_id = IntegerInput(
        required=False,
        allow_null=True,
        error_messages={"invalid": "template_id must be a whole number."},
        help_text="Start from this template (GET /api/avatar-templates/); the fields given here win.",
    )

    def validate(self, attrs):
        if attrs.get("template_id") is not None:
            # Only what the caller sent wins over the template: drop the defaults filled in here
            # (the template may bring a voice, so cloning is checked after the merge).
            sent = set(getattr(self, "initial_data", {}) or {})
            return {key: value for key, value in attrs.items() if key in sent}
        if attrs.get("support_clone") and attrs.get("prompt_voice") is None:
            raise serializers.ValidationError({"prompt_voice": "Voice cloning needs a prompt_voice recording."})
        return attrs


class AvatarUpdateSerializer(InputSerializer):
    """`PATCH /api/avatars/{id}` and the admin's change form (use with partial=True)."""

    display_name = TextInput("display_name", 120, help_text="Blank: the name.")
    description = TextInput("description", 5000)
    timbre = TextInput("timbre", 120)
    avatar_blur = BooleanInput(required=False)
    status = serializers.ChoiceField(
        ["active", "inactive"],
        required=False,
        error_messages={
            "invalid_choice": "status can only be set to 'active' or 'inactive'.",
            "null": "status can only be set to 'active' or 'inactive'.",
        },
    )
    # The conversation fields (AVATAR_CONVERSATION_FIELDS).
    persona = TextInput("persona", PERSONA_MAX_CHARS, help_text=PERSONA_HELP)
    greeting = TextInput("greeting", GREETING_MAX_CHARS, help_text=GREETING_HELP)
    language = LanguageInput(help_text=LANGUAGE_HELP)
    asr_model = ChoiceInput("asr_model", asr_engine_choices, help_text=ASR_MODEL_HELP)
    llm_model = ChoiceInput("llm_model", responder_choices, help_text=LLM_MODEL_HELP)

    def unknown_fields_message(self, unknown: list[str]) -> str:
        editable = ", ".join(sorted(self.fields))
        return f"These fields cannot be changed: {', '.join(unknown)}. Editable fields: {editable}."


class AvatarStartSerializer(InputSerializer):
    """The body of `POST /api/avatars/{id}/start`."""

    ref_file = TextInput("ref_file", 255, help_text="Another audio file of this avatar for voice cloning.")

    def unknown_fields_message(self, unknown: list[str]) -> str:
        return f"Unknown fields: {', '.join(unknown)}; start accepts only ref_file."


class AvatarStartQuerySerializer(serializers.Serializer):
    """Query parameters of start: `?wait=1` waits for the worker (the synchronous answer);
    `GET ...?job_id=` asks after a start job."""

    wait = BooleanInput(required=False, default=False)
    job_id = TextInput("job_id", 255)


class StatusMessageSerializer(serializers.Serializer):
    status = serializers.CharField()
    message = serializers.CharField()


class RenderSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    avatar_id = serializers.IntegerField()
    status = serializers.CharField()
    text = serializers.CharField()
    tts_model = serializers.CharField()
    voice = serializers.CharField()
    progress_percent = serializers.IntegerField()
    progress_message = serializers.CharField()
    error_message = serializers.CharField()
    frame_count = serializers.IntegerField()
    duration_seconds = serializers.FloatField()
    download_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_download_url(self, render) -> str:
        return reverse("avatar-render-detail", args=[render.avatar_id, render.pk])


class RenderCreateSerializer(InputSerializer):
    """`POST /api/avatars/{id}/render`: text (spoken by TTS) or an uploaded speech recording."""

    text = serializers.CharField(required=False, allow_blank=True, default="")
    tts_model = ChoiceInput("tts_model", tts_engine_choices, help_text="Default: the avatar's.")
    voice = TextInput("voice", 120, help_text="Default: the avatar's timbre.")
    audio = UploadInput(required=False, help_text="A speech recording to lip-sync instead of text.")

    def validate(self, attrs):
        if attrs.get("audio") is None and not attrs.get("text"):
            raise serializers.ValidationError({"text": "Give the text to speak, or an audio file."})
        if attrs.get("audio") is not None and attrs.get("text"):
            raise serializers.ValidationError({"text": "Give either text or an audio file, not both."})
        attrs["tts_model"] = attrs.get("tts_model") or None
        return attrs
