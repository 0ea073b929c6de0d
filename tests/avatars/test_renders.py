"""Talking clips: POST /api/avatars/{id}/render -> a job on the lipsync queue -> an MP4."""

import io

import av
import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from avatars.models import Avatar, AvatarRender
from tests import media
from tests.conftest import avatar_create_and_wait, wait_for


def _download(api, avatar_id, render_id, timeout=120):
    def finished():
        response = api.get(f"/api/avatars/{avatar_id}/renders/{render_id}")
        return response if response.status_code != 202 else None

    return wait_for(finished, timeout=timeout, message="the render")


def _probe(content: bytes):
    with av.open(io.BytesIO(content)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        facts = {
            "video_codec": video.codec_context.name,
            "audio_codec": audio.codec_context.name,
            "fps": float(video.average_rate),
            "size": (video.codec_context.width, video.codec_context.height),
        }
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video)]
    with av.open(io.BytesIO(content)) as container:
        rate = container.streams.audio[0].rate
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    facts.update(frames=frames, audio=pcm, audio_seconds=len(pcm) / rate)
    return facts


@pytest.mark.integration
def test_text_becomes_a_talking_clip(transactional_db, celery_worker_process, api, tutor, face_video):
    avatar = avatar_create_and_wait(api, tutor, face_video, "talker", tts_model="espeak-ng")
    assert avatar["status"] == "inactive"
    response = api.post(
        f"/api/avatars/{avatar['id']}/render",
        {"text": "Hello class. Today we open our books at page nine."},
        format="json",
    )
    assert response.status_code == 202, response.content
    render = response.json()
    assert render["status"] == "queued"

    clip = _download(api, avatar["id"], render["id"])
    assert clip.status_code == 200, clip.content[:500]
    assert clip["Content-Type"] == "video/mp4"
    facts = _probe(b"".join(clip.streaming_content))
    assert facts["video_codec"] == "h264" and facts["audio_codec"] == "aac"
    assert facts["fps"] == 25 and facts["size"] == (320, 384)
    # Picture and sound last as long as each other (within a frame), and the sound is speech.
    assert abs(len(facts["frames"]) / 25 - facts["audio_seconds"]) <= 0.08
    assert 2.0 < facts["audio_seconds"] < 8.0
    assert np.abs(facts["audio"]).max() > 0.05
    # The mouth moves: the lower face changes from frame to frame while speaking.
    frames = np.stack(facts["frames"]).astype(np.int16)
    h = frames.shape[1]
    lower_face_motion = np.abs(np.diff(frames[:, h // 4 : h // 2], axis=0)).mean(axis=(1, 2, 3))
    assert lower_face_motion.max() > 1.5

    listed = api.get(f"/api/avatars/{avatar['id']}/renders").json()
    assert [r["id"] for r in listed] == [render["id"]] and listed[0]["status"] == "done"
    assert listed[0]["frame_count"] == len(facts["frames"])


@pytest.mark.integration
def test_uploaded_speech_becomes_a_talking_clip_and_delete_removes_it(
    transactional_db, celery_worker_process, api, tutor, face_video, tmp_path
):
    avatar = avatar_create_and_wait(api, tutor, face_video, "audio_talker")
    speech = media.write_tone_wav(tmp_path / "speech.wav", seconds=1.6)
    response = api.post(
        f"/api/avatars/{avatar['id']}/render",
        {"audio": SimpleUploadedFile("speech.wav", speech.read_bytes())},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    clip = _download(api, avatar["id"], response.json()["id"])
    assert clip.status_code == 200
    facts = _probe(b"".join(clip.streaming_content))
    assert len(facts["frames"]) == 40  # 1.6 s at 25 fps
    render = AvatarRender.objects.get(pk=response.json()["id"])
    assert default_storage.exists(render.video_path)
    api.delete(f"/api/avatars/{avatar['id']}/renders/{render.pk}")
    assert not default_storage.exists(render.video_path)
    assert not AvatarRender.objects.filter(pk=render.pk).exists()


@pytest.fixture
def ready_avatar(tutor):
    return Avatar.objects.create(tutor=tutor, name="ready", status="inactive", assets_path="avatars/x/assets/y")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload, status, words",
    [
        ({"text": ""}, 400, ["text"]),
        ({"text": "   "}, 400, ["text"]),
        ({"text": "hi", "tts_model": "siri"}, 400, ["tts_model"]),
        ({"text": "hi", "voice": "nobody"}, 400, ["voice"]),
        ({"text": "x" * 6000}, 400, ["too long"]),
        ({"text": "hi", "colour": "red"}, 400, ["colour"]),
        ({"text": "hi", "tts_model": "edge-tts"}, 503, ["edge-tts"]),
    ],
)
def test_bad_render_requests_are_refused(api, ready_avatar, published_catalogues, payload, status, words):
    response = api.post(f"/api/avatars/{ready_avatar.pk}/render", payload, format="json")
    assert response.status_code == status, response.content
    for word in words:
        assert word.lower() in response.json()["detail"].lower()
    assert not AvatarRender.objects.exists()


@pytest.mark.django_db
def test_bad_render_audio_is_refused(api, ready_avatar, face_video, tmp_path, settings):
    for upload in (
        SimpleUploadedFile("speech.wav", face_video.read_bytes()),
        SimpleUploadedFile("speech.wav", b"RIFF" + bytes(2000)),
    ):
        response = api.post(f"/api/avatars/{ready_avatar.pk}/render", {"audio": upload}, format="multipart")
        assert response.status_code == 400, response.content
    settings.RENDER_MAX_SECONDS = 1
    long = media.write_tone_wav(tmp_path / "long.wav", seconds=2)
    response = api.post(
        f"/api/avatars/{ready_avatar.pk}/render",
        {"audio": SimpleUploadedFile("long.wav", long.read_bytes())},
        format="multipart",
    )
    assert response.status_code == 400 and "limit is 1 s" in response.json()["detail"]
    assert not AvatarRender.objects.exists()


@pytest.mark.django_db
def test_an_avatar_that_is_not_ready_cannot_render(api, tutor):
    avatar = Avatar.objects.create(tutor=tutor, name="busy", status="processing")
    response = api.post(f"/api/avatars/{avatar.pk}/render", {"text": "hello"}, format="json")
    assert response.status_code == 409 and "processing" in response.json()["detail"]


@pytest.mark.django_db
def test_another_admins_renders_are_not_found(other_api, ready_avatar):
    render = AvatarRender.objects.create(avatar=ready_avatar, text="secret")
    assert other_api.get(f"/api/avatars/{ready_avatar.pk}/renders/{render.pk}").status_code == 404
    assert other_api.get(f"/api/avatars/{ready_avatar.pk}/renders").status_code == 404
    assert other_api.post(f"/api/avatars/{ready_avatar.pk}/render", {"text": "hi"}, format="json").status_code == 404


@pytest.mark.integration
def test_render_avatar_command_writes_the_clip(
    transactional_db, celery_worker_process, api, tutor, face_video, tmp_path
):
    from django.core.management import call_command

    avatar = avatar_create_and_wait(api, tutor, face_video, "cli_talker", tts_model="espeak-ng")
    out = tmp_path / "clips" / "hello.mp4"
    call_command("render_avatar", "cli_talker", "--text", "Hello from the command line.", "-o", str(out))
    facts = _probe(out.read_bytes())
    assert facts["video_codec"] == "h264" and facts["audio_codec"] == "aac"
    assert 1.0 < facts["audio_seconds"] < 5.0
    assert AvatarRender.objects.get(avatar_id=avatar["id"]).status == "done"


@pytest.mark.django_db
def test_render_avatar_command_explains_what_is_wrong(tutor, tmp_path):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="No avatar"):
        call_command("render_avatar", "nobody", "--text", "hi", "-o", str(tmp_path / "x.mp4"))
