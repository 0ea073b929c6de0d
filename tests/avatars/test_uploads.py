"""Every rejected upload is a 400 with a reason a person can act on, and leaves nothing behind."""

import os
from pathlib import Path

import av
import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from avatars.models import Avatar
from tests import media

pytestmark = pytest.mark.django_db


def _post(api, tutor, video: Path | None, filename=None, voice: Path | None = None, voice_name=None, **fields):
    data = {"tutor_id": tutor.pk, "name": fields.pop("name", "ada"), **fields}
    if video is not None:
        data["prompt_face"] = SimpleUploadedFile(filename or video.name, video.read_bytes())
    if voice is not None:
        data["prompt_voice"] = SimpleUploadedFile(voice_name or voice.name, voice.read_bytes())
    return api.post("/api/avatars/create", data, format="multipart")


def _assert_rejected(response, *words):
    assert response.status_code == 400, response.content
    detail = response.json()["detail"]
    for word in words:
        assert word.lower() in detail.lower(), detail
    assert not Avatar.objects.exists()
    assert not default_storage.exists("avatars")  # nothing stored


@pytest.fixture(autouse=True)
def fresh_media_root(settings, tmp_path):
    """An empty storage per test, so 'nothing stored' can be checked."""
    settings.MEDIA_ROOT = str(tmp_path / "storage")


@pytest.fixture
def tmp_media(tmp_path):
    return tmp_path


def test_a_good_video_is_accepted_and_stored_under_a_generated_name(api, tutor, face_video, voice_wav):
    response = _post(api, tutor, face_video, filename="../../etc/My Tutor.mp4", voice=voice_wav, voice_name="me.wav")
    assert response.status_code == 201, response.content
    avatar = Avatar.objects.get()
    assert avatar.video_path == f"avatars/{avatar.pk}/source/video.mp4"
    assert avatar.audio_path == f"avatars/{avatar.pk}/source/voice.wav"
    assert default_storage.exists(avatar.video_path)
    assert avatar.status == "processing"


def test_missing_video_is_rejected(api, tutor):
    _assert_rejected(_post(api, tutor, None), "prompt_face")


def test_unknown_extension_is_rejected(api, tutor, face_video):
    _assert_rejected(_post(api, tutor, face_video, filename="tutor.txt"), ".mp4")


def test_corrupt_file_is_rejected(api, tutor, tmp_media):
    path = tmp_media / "junk.mp4"
    path.write_bytes(np.random.default_rng(1).integers(0, 255, 50_000, dtype=np.uint8).tobytes())
    _assert_rejected(_post(api, tutor, path), "corrupt")


def test_truncated_file_is_rejected(api, tutor, face_video, tmp_media):
    path = tmp_media / "cut.mp4"
    data = face_video.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    response = _post(api, tutor, path)
    assert response.status_code == 400
    assert any(w in response.json()["detail"] for w in ("truncated", "damaged", "corrupt")), response.json()


def test_container_that_does_not_match_the_extension_is_rejected(api, tutor, face_video):
    _assert_rejected(_post(api, tutor, face_video, filename="tutor.webm"), "real extension")


def test_file_without_a_video_stream_is_rejected(api, tutor, tmp_media):
    path = tmp_media / "sound.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        media._encode_tone(out, stream, 2.0)
    _assert_rejected(_post(api, tutor, path), "no video stream")


def test_too_short_video_is_rejected(api, tutor, tmp_media):
    path = media.write_video(tmp_media / "short.mp4", media.face_frames(0.5))
    _assert_rejected(_post(api, tutor, path), "at least 1 s")


def test_too_long_video_is_rejected(api, tutor, face_video, settings):
    settings.AVATAR_MAX_SECONDS = 1.5
    _assert_rejected(_post(api, tutor, face_video), "limit is 1.5 s")


def test_too_large_resolution_is_rejected(api, tutor, face_video, settings):
    settings.AVATAR_MAX_WIDTH, settings.AVATAR_MAX_HEIGHT = 256, 200
    _assert_rejected(_post(api, tutor, face_video), "320x384", "256x200")


def test_too_high_frame_rate_is_rejected(api, tutor, tmp_media):
    path = media.write_video(tmp_media / "fast.mp4", media.face_frames(1.5, fps=75), fps=75)
    _assert_rejected(_post(api, tutor, path), "75.00 fps")


def test_too_many_streams_are_rejected(api, tutor, tmp_media):
    path = media.write_video(tmp_media / "multi.mp4", media.face_frames(1.2), audio_seconds=1.2, extra_audio_streams=4)
    _assert_rejected(_post(api, tutor, path), "6 streams")


def test_oversized_upload_is_rejected(api, tutor, face_video, settings):
    settings.AVATAR_MAX_UPLOAD_MB = 0
    _assert_rejected(_post(api, tutor, face_video), "limit is 0 MB")


def test_other_video_codecs_are_accepted(api, tutor, tmp_media):
    path = media.write_video(tmp_media / "clip.webm", media.face_frames(1.2), codec="libvpx-vp9")
    assert _post(api, tutor, path).status_code == 201


@pytest.mark.parametrize(
    "case, words",
    [
        ("video_as_voice", ["voice", ".wav"]),
        ("corrupt_voice", ["corrupt"]),
        ("long_voice", ["limit is 1 s"]),
    ],
)
def test_bad_voice_uploads_are_rejected(api, tutor, face_video, voice_wav, tmp_media, settings, case, words):
    voice, name = voice_wav, "voice.wav"
    if case == "video_as_voice":
        voice, name = face_video, "voice.mp4"
    elif case == "corrupt_voice":
        voice = tmp_media / "bad.wav"
        voice.write_bytes(b"RIFF" + os.urandom(3000))
    elif case == "long_voice":
        settings.VOICE_MAX_SECONDS = 1
    _assert_rejected(_post(api, tutor, face_video, voice=voice, voice_name=name), *words)


@pytest.mark.parametrize(
    "fields, status, words",
    [
        ({"name": "bad name!"}, 400, ["letters"]),
        ({"name": ""}, 400, ["name"]),
        ({"avatar_model": "sora"}, 400, ["avatar_model", "viseme"]),
        ({"tts_model": "siri"}, 400, ["tts_model", "piper"]),
        ({"avatar_blur": "maybe"}, 400, ["avatar_blur"]),
        ({"colour": "red"}, 400, ["colour"]),
    ],
)
def test_bad_fields_are_rejected(api, tutor, face_video, fields, status, words):
    response = _post(api, tutor, face_video, **fields)
    assert response.status_code == status, response.content
    for word in words:
        assert word in response.json()["detail"]
    assert not Avatar.objects.exists()


def test_engine_without_weights_is_rejected_with_the_reason(api, tutor, face_video):
    response = _post(api, tutor, face_video, avatar_model="wav2lip")
    assert response.status_code == 400
    assert "wav2lip" in response.json()["detail"]
    assert "cannot be used here" in response.json()["detail"]


def test_duplicate_name_is_a_conflict(api, tutor, face_video):
    assert _post(api, tutor, face_video, name="ada").status_code == 201
    response = _post(api, tutor, face_video, name="ada")
    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]
    assert Avatar.objects.count() == 1


def test_another_admins_tutor_is_not_found(other_api, tutor, face_video):
    response = _post(other_api, tutor, face_video)
    assert response.status_code == 404
    assert not Avatar.objects.exists()


def test_names_are_unique_per_admin_only(api, other_api, tutor, other_admin, face_video):
    from tutors.services import tutor_create

    theirs = tutor_create(owner=other_admin, name="Their tutor")
    assert _post(api, tutor, face_video, name="ada").status_code == 201
    # Another admin may use the same name: a 409 would tell them this admin has one.
    response = _post(other_api, theirs, face_video, name="ada")
    assert response.status_code == 201, response.content
    assert Avatar.objects.filter(name="ada").count() == 2


def test_a_tutor_moves_to_another_admin_only_without_a_name_clash(admin_user, other_admin, tutor):
    from tutor_site.exceptions import NameTaken
    from tutors.services import tutor_create, tutor_update

    Avatar.objects.create(tutor=tutor, name="ada", status="inactive")
    theirs = tutor_create(owner=other_admin, name="Their tutor")
    Avatar.objects.create(tutor=theirs, name="ada", status="inactive")
    with pytest.raises(NameTaken, match="already has an avatar named 'ada'"):
        tutor_update(tutor, new_owner=other_admin)
    tutor.refresh_from_db()
    assert tutor.owner == admin_user
    Avatar.objects.filter(tutor=theirs).update(name="ada-2")
    tutor_update(tutor, new_owner=other_admin)
    assert set(Avatar.objects.filter(owner=other_admin).values_list("name", flat=True)) == {"ada", "ada-2"}
