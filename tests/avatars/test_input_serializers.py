"""The input serializers are the one validation of each write: the API, the admin forms and
`create_avatars` run them, so they share one boolean parser and one set of messages."""

import pytest

from avatars.serializers import (
    AvatarCreateSerializer,
    AvatarUpdateSerializer,
    RenderCreateSerializer,
    input_validate,
)
from avatars.services import UploadSource
from tutor_site.exceptions import InvalidInput

FACE = UploadSource(path="/nonexistent/face.mp4", filename="face.mp4")


def _create(**fields):
    return input_validate(AvatarCreateSerializer, {"tutor_id": "7", "name": "ada", "prompt_face": FACE, **fields})


@pytest.mark.parametrize(
    "text, value",
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" on ", True),
        (True, True),
        (1, True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("", False),
        (False, False),
        (None, False),
    ],
)
def test_one_boolean_parser(text, value):
    assert _create(avatar_blur=text)["avatar_blur"] is value
    assert input_validate(AvatarUpdateSerializer, {"avatar_blur": text}, partial=True)["avatar_blur"] is value


def test_create_fields_are_typed_for_the_service():
    data = _create(display_name="  Ada  ", support_clone="no", avatar_model="", tts_model="piper")
    assert data["tutor_id"] == 7 and data["name"] == "ada" and data["display_name"] == "Ada"
    assert data["avatar_blur"] is False and data["support_clone"] is False
    assert data["prompt_face"] == FACE and "prompt_voice" not in data
    assert data["tts_model"] == "piper" and not data["avatar_model"]


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"colour": "red", "size": "L"}, "colour", "Unknown fields: colour, size."),
        ({"tutor_id": ""}, "tutor_id", "tutor_id is required."),
        ({"tutor_id": "seven"}, "tutor_id", "tutor_id must be a whole number."),
        ({"name": ""}, "name", "An avatar needs a name (letters, digits, '_' and '-')."),
        ({"name": "bad name!"}, "name", "Use only letters, digits, '_' and '-' in an avatar name."),
        ({"name": "a" * 65}, "name", "An avatar name has at most 64 characters."),
        ({"display_name": "d" * 121}, "display_name", "display_name has at most 120 characters."),
        ({"timbre": "t" * 121}, "timbre", "timbre has at most 120 characters."),
        ({"avatar_blur": "maybe"}, "avatar_blur", "avatar_blur must be true or false."),
        ({"avatar_model": "sora"}, "avatar_model", "Unknown avatar_model 'sora'; choose one of:"),
        ({"tts_model": "siri"}, "tts_model", "Unknown tts_model 'siri'; choose one of:"),
        ({"prompt_face": ""}, "prompt_face", "prompt_face (the tutor's video) is required."),
        ({"prompt_face": "/etc/passwd"}, "prompt_face", "Send a file"),
        ({"support_clone": "yes"}, "prompt_voice", "Voice cloning needs a prompt_voice recording."),
    ],
)
def test_create_refuses_with_the_apis_messages(fields, field, message):
    with pytest.raises(InvalidInput) as info:
        _create(**fields)
    assert info.value.field == field
    assert info.value.detail.startswith(message), info.value.detail
    assert info.value.status_code == 400


def test_every_wrong_field_is_reported_at_once():
    with pytest.raises(InvalidInput) as info:
        _create(name="bad name!", avatar_blur="maybe", display_name="d" * 121)
    assert set(info.value.extra["errors"]) == {"name", "avatar_blur", "display_name"}


def test_update_names_what_cannot_be_changed():
    with pytest.raises(InvalidInput) as info:
        input_validate(AvatarUpdateSerializer, {"name": "x", "video_path": "/etc/passwd"}, partial=True)
    assert info.value.detail == (
        "These fields cannot be changed: name, video_path. "
        "Editable fields: asr_model, avatar_blur, description, display_name, greeting, language, llm_model, "
        "persona, status, timbre."
    )
    assert info.value.field == "name"
    with pytest.raises(InvalidInput, match="status can only be set to 'active' or 'inactive'."):
        input_validate(AvatarUpdateSerializer, {"status": "error"}, partial=True)
    assert input_validate(AvatarUpdateSerializer, {"display_name": None}, partial=True) == {"display_name": ""}


def test_render_takes_text_or_audio():
    assert input_validate(RenderCreateSerializer, {"text": " hi "}) == {"text": "hi", "tts_model": None}
    with pytest.raises(InvalidInput, match="Give the text to speak, or an audio file."):
        input_validate(RenderCreateSerializer, {"text": "   "})
    with pytest.raises(InvalidInput, match="not both"):
        input_validate(RenderCreateSerializer, {"text": "hi", "audio": FACE})
    with pytest.raises(InvalidInput, match="Unknown fields: colour."):
        input_validate(RenderCreateSerializer, {"text": "hi", "colour": "red"})
