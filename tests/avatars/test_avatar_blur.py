"""`avatar_blur` after creation: a change through the API or the admin reprocesses the
video in the background (the real Celery worker), and turning it off restores the frames."""

import io
import json

import av
import cv2
import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from avatars.models import Avatar, AvatarStatus
from lipsync_worker.background_blur import PersonSegmenter
from tests import media
from tests.conftest import avatar_create_and_wait, wait_for


def _frames(avatar_id: int) -> list[np.ndarray]:
    avatar = Avatar.objects.get(pk=avatar_id)
    with av.open(default_storage.path(f"{avatar.assets_path}/frames.mp4")) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def _meta(avatar_id: int) -> dict:
    avatar = Avatar.objects.get(pk=avatar_id)
    return json.loads(default_storage.open(f"{avatar.assets_path}/meta.json").read())


def _sure_background(segmenter: PersonSegmenter, image: np.ndarray) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11))
    return cv2.erode((segmenter.probability(image) < 0.1).astype(np.uint8), kernel).astype(bool)


def _sharpness(image: np.ndarray, region: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F)[region].var())


def _background_sharpness_ratio(plain: list[np.ndarray], blurred: list[np.ndarray]) -> float:
    """Median over frames of the Laplacian variance outside the person, blurred / plain."""
    segmenter = PersonSegmenter()
    try:
        ratios = []
        for before, after in zip(plain, blurred, strict=True):
            region = _sure_background(segmenter, before)
            ratios.append(_sharpness(after, region) / _sharpness(before, region))
    finally:
        segmenter.close()
    return float(np.median(ratios))


def _background_sharpness(images: list[np.ndarray]) -> float:
    """Median over images of the Laplacian variance outside the person (each image's own)."""
    segmenter = PersonSegmenter()
    try:
        return float(np.median([_sharpness(image, _sure_background(segmenter, image)) for image in images]))
    finally:
        segmenter.close()


def _preview(api, avatar_id: int) -> np.ndarray:
    response = api.get(f"/api/avatars/{avatar_id}/preview")
    assert response.status_code == 200
    data = np.frombuffer(b"".join(response.streaming_content), np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def _rendered_frames(api, avatar_id: int, speech) -> list[np.ndarray]:
    response = api.post(
        f"/api/avatars/{avatar_id}/render",
        {"audio": SimpleUploadedFile("speech.wav", speech.read_bytes())},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    render_id = response.json()["id"]

    def finished():
        response = api.get(f"/api/avatars/{avatar_id}/renders/{render_id}")
        return response if response.status_code != 202 else None

    clip = wait_for(finished, timeout=120, message="the render")
    assert clip.status_code == 200
    with av.open(io.BytesIO(b"".join(clip.streaming_content))) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def _face_box_mad(avatar_id: int, plain: list[np.ndarray], blurred: list[np.ndarray]) -> float:
    avatar = Avatar.objects.get(pk=avatar_id)
    with default_storage.open(f"{avatar.assets_path}/face_track.npz") as fh, np.load(fh) as track:
        boxes = track["boxes"]
    mads = []
    for before, after, box in zip(plain, blurred, boxes, strict=True):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        mads.append(np.abs(after[y1:y2, x1:x2].astype(int) - before[y1:y2, x1:x2]).mean())
    return float(max(mads))


def _wait_ready(api, avatar_id: int, timeout: float = 180) -> dict:
    def done():
        body = api.get(f"/api/avatars/{avatar_id}").json()
        return body if body["status"] != "processing" else None

    return wait_for(done, timeout=timeout, message="reprocessing to finish")


@pytest.mark.integration
def test_patching_avatar_blur_reprocesses_the_frames_and_turning_it_off_restores_them(
    transactional_db, celery_worker_process, api, tutor, face_video, tmp_path
):
    body = avatar_create_and_wait(api, tutor, face_video, "blur_later")
    assert body["status"] == "inactive" and body["avatar_blur"] is False, celery_worker_process.log()
    avatar_id, first_assets = body["id"], Avatar.objects.get(pk=body["id"]).assets_path
    plain, plain_preview = _frames(avatar_id), _preview(api, avatar_id)
    assert _meta(avatar_id)["background_blur"] is None

    response = api.patch(f"/api/avatars/{avatar_id}", {"avatar_blur": True}, format="json")
    assert response.status_code == 200, response.content
    changed = response.json()
    # The detail shows the new job at once: processing, a new task, queued.
    assert changed["avatar_blur"] is True and changed["status"] == "processing"
    assert changed["task_id"] != body["task_id"]
    assert changed["progress"]["stage"] == "queued"

    ready = _wait_ready(api, avatar_id)
    assert ready["status"] == "inactive", (ready, celery_worker_process.log())
    assert ready["frame_count"] == 50
    blurred = _frames(avatar_id)
    assert _meta(avatar_id)["background_blur"] == {"frames": 50, "blurred": 50, "frames_without_person": 0}
    assert _background_sharpness_ratio(plain, blurred) <= 0.30
    assert _face_box_mad(avatar_id, plain, blurred) <= 3.5  # the H.264 re-encode, no more
    assert not default_storage.exists(f"{first_assets}/frames.mp4")  # the old assets are gone
    # What users see reads these frames: the preview and a talking clip show the blur too.
    assert _background_sharpness_ratio([plain_preview], [_preview(api, avatar_id)]) <= 0.4
    speech = media.write_tone_wav(tmp_path / "speech.wav", seconds=1.6)
    rendered = _rendered_frames(api, avatar_id, speech)
    assert len(rendered) == 40
    assert _background_sharpness(rendered) <= 0.4 * _background_sharpness(plain)

    response = api.patch(f"/api/avatars/{avatar_id}", {"avatar_blur": False}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "processing"
    ready = _wait_ready(api, avatar_id)
    assert ready["status"] == "inactive" and ready["avatar_blur"] is False, celery_worker_process.log()
    restored = _frames(avatar_id)
    assert _meta(avatar_id)["background_blur"] is None
    assert len(restored) == len(plain)
    assert max(np.abs(a.astype(int) - b).mean() for a, b in zip(restored, plain, strict=True)) < 0.5


@pytest.mark.integration
def test_a_blur_change_while_processing_replaces_the_job(
    transactional_db, celery_worker_process, api, tutor, face_video
):
    with open(face_video, "rb") as fh:
        created = api.post(
            "/api/avatars/create", {"tutor_id": tutor.pk, "name": "blur_soon", "prompt_face": fh}, format="multipart"
        ).json()
    assert created["status"] == "processing" and created["avatar_blur"] is False
    response = api.patch(f"/api/avatars/{created['id']}", {"avatar_blur": True}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["task_id"] != created["task_id"]
    ready = _wait_ready(api, created["id"])
    # Whatever the first job had done, the avatar ends with the setting last asked for.
    assert ready["status"] == "inactive" and ready["avatar_blur"] is True, celery_worker_process.log()
    assert _meta(created["id"])["background_blur"]["blurred"] == 50


@pytest.mark.integration
def test_the_admin_change_form_reprocesses_with_the_blur(
    transactional_db, celery_worker_process, api, client, admin_user, tutor, face_video
):
    body = avatar_create_and_wait(api, tutor, face_video, "blur_admin")
    plain = _frames(body["id"])
    client.force_login(admin_user)
    url = reverse("admin:avatars_avatar_change", args=[body["id"]])
    response = client.post(
        url, {"display_name": "Ada", "description": "", "timbre": "", "avatar_blur": "on", "language": "en"}
    )
    assert response.status_code == 302, response.content
    assert Avatar.objects.get(pk=body["id"]).status == AvatarStatus.PROCESSING
    # The list shows the job's progress while it runs, then the avatar ready again.
    ready = _wait_ready(api, body["id"])
    assert ready["status"] == "inactive" and ready["avatar_blur"] is True, celery_worker_process.log()
    assert _background_sharpness_ratio(plain, _frames(body["id"])) <= 0.30


# --- refusals: rows inserted directly, nothing reaches a worker -------------------------------


def _row(tutor, name, status=AvatarStatus.INACTIVE, **extra) -> Avatar:
    return Avatar.objects.create(
        tutor=tutor,
        owner_id=tutor.owner_id,
        name=name,
        display_name=name,
        status=status,
        video_path=f"avatars/{name}/source/video.mp4",
        assets_path=f"avatars/{name}/assets/t1",
        task_id="t1",
        **extra,
    )


@pytest.mark.django_db
def test_the_same_value_changes_nothing(api, tutor):
    avatar = _row(tutor, "steady", avatar_blur=True)
    response = api.patch(f"/api/avatars/{avatar.pk}", {"avatar_blur": True, "description": "x"}, format="json")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["task_id"]) == ("inactive", "t1")


@pytest.mark.django_db
def test_an_active_avatar_must_be_stopped_first(api, tutor):
    avatar = _row(tutor, "live_one", status=AvatarStatus.ACTIVE)
    response = api.patch(f"/api/avatars/{avatar.pk}", {"avatar_blur": True}, format="json")
    assert response.status_code == 409
    assert response.json()["field"] == "avatar_blur" and "stop it" in response.json()["detail"]
    avatar.refresh_from_db()
    assert (avatar.avatar_blur, avatar.status, avatar.task_id) == (False, AvatarStatus.ACTIVE, "t1")


@pytest.mark.django_db
def test_blur_and_status_are_not_changed_together(api, tutor):
    avatar = _row(tutor, "both")
    response = api.patch(f"/api/avatars/{avatar.pk}", {"avatar_blur": True, "status": "active"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "avatar_blur"
    avatar.refresh_from_db()
    assert (avatar.avatar_blur, avatar.status) == (False, AvatarStatus.INACTIVE)


@pytest.mark.django_db
def test_a_manage_grantee_cannot_change_the_blur(api, other_api, other_admin, tutor):
    avatar = _row(tutor, "shared_one")
    shared = api.post(f"/api/avatars/{avatar.pk}/shares", {"email": other_admin.email, "permission": "manage"})
    assert shared.status_code == 201, shared.content
    response = other_api.patch(f"/api/avatars/{avatar.pk}", {"avatar_blur": True}, format="json")
    assert response.status_code == 403 and "blur" in response.json()["detail"]
    # Its other edits still work.
    assert other_api.patch(f"/api/avatars/{avatar.pk}", {"description": "ok"}, format="json").status_code == 200
    avatar.refresh_from_db()
    assert (avatar.avatar_blur, avatar.status, avatar.description) == (False, AvatarStatus.INACTIVE, "ok")


@pytest.mark.django_db
def test_the_admin_form_shows_why_an_active_avatar_is_refused(client, admin_user, tutor):
    avatar = _row(tutor, "admin_live", status=AvatarStatus.ACTIVE)
    client.force_login(admin_user)
    url = reverse("admin:avatars_avatar_change", args=[avatar.pk])
    response = client.post(url, {"display_name": "x", "description": "", "timbre": "", "avatar_blur": "on"})
    assert response.status_code == 200
    assert "stop it before changing avatar_blur" in str(response.context["adminform"].form.errors["avatar_blur"])
    avatar.refresh_from_db()
    assert avatar.avatar_blur is False
