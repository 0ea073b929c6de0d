"""Create an avatar through the API and let a real Celery worker preprocess it."""

import io
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from avatars.models import Avatar
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration]


def _create(api, tutor, video: Path, name="ada_v1", **extra):
    with open(video, "rb") as fh:
        return api.post(
            "/api/avatars/create",
            {"tutor_id": tutor.pk, "name": name, "display_name": "Ada", "prompt_face": fh, **extra},
            format="multipart",
        )


def _wait_done(api, avatar_id, timeout=120):
    def done():
        body = api.get(f"/api/avatars/{avatar_id}").json()
        return body if body["status"] != "processing" else None

    return wait_for(done, timeout=timeout, message="preprocessing to finish")


def test_uploaded_video_becomes_a_ready_avatar_with_preview(
    transactional_db, celery_worker_process, api, tutor, face_video
):
    response = _create(api, tutor, face_video)
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["status"] == "processing"
    assert created["tutor_id"] == tutor.pk
    # The stored name is generated, never the client's.
    assert "tutor.mp4" not in created["video_path"]

    # The preview is a JSON 404 until processing has made one.
    early = api.get(f"/api/avatars/{created['id']}/preview")
    if early.status_code == 404:
        assert "preview" in early.json()["detail"]

    body = _wait_done(api, created["id"])
    assert body["status"] == "inactive", (body, celery_worker_process.log())
    assert body["progress"]["percent"] == 100
    assert body["frame_count"] == 50  # 2 s at 25 fps
    assert (body["width"], body["height"]) == (320, 384)

    preview = api.get(f"/api/avatars/{created['id']}/preview")
    assert preview.status_code == 200
    assert preview["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(b"".join(preview.streaming_content)))
    assert image.size == (320, 384)

    # The assets the engines need are in storage.
    avatar = Avatar.objects.get(pk=created["id"])
    _dirs, files = default_storage.listdir(avatar.assets_path)
    assert {"frames.mp4", "face_crops.mp4", "face_track.npz", "meta.json", "preview.png"} <= set(files)


def test_video_without_a_face_ends_in_error_with_a_reason(
    transactional_db, celery_worker_process, api, tutor, noface_video
):
    response = _create(api, tutor, noface_video, name="no_face")
    assert response.status_code == 201, response.content
    body = _wait_done(api, response.json()["id"])
    assert body["status"] == "error"
    assert "face" in body["error_message"].lower()
    # Nothing half-written: no assets, no preview.
    avatar = Avatar.objects.get(pk=body["id"])
    assert avatar.assets_path == ""
    assert api.get(f"/api/avatars/{body['id']}/preview").status_code == 404
    assert not default_storage.exists(f"avatars/{avatar.pk}/assets")


def test_uploaded_voice_becomes_a_normalised_cloning_reference(
    transactional_db, celery_worker_process, api, tutor, face_video, voice_wav
):
    import wave

    with open(face_video, "rb") as fh, open(voice_wav, "rb") as vh:
        response = api.post(
            "/api/avatars/create",
            {"tutor_id": tutor.pk, "name": "with_voice", "prompt_face": fh, "prompt_voice": vh},
            format="multipart",
        )
    assert response.status_code == 201, response.content
    body = _wait_done(api, response.json()["id"])
    assert body["status"] == "inactive", body
    avatar = Avatar.objects.get(pk=body["id"])
    assert avatar.voice_reference_path.endswith("voice_reference.wav")
    with default_storage.open(avatar.voice_reference_path, "rb") as fh, wave.open(fh) as wav:
        assert wav.getnchannels() == 1 and wav.getframerate() == 16000
        assert 1.0 <= wav.getnframes() / 16000 <= 30.0
