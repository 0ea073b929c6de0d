"""A worker killed in the middle of preprocessing: the job is redelivered to another
worker, the avatar still ends ready, and the killed attempt leaves no files behind."""

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from avatars.models import Avatar
from tests import media
from tests.conftest import wait_for
from tutor_site.celery import app as celery_app

pytestmark = [pytest.mark.integration]

QUEUE = "lipsync-crashtest"
FAST_RECOVERY = {
    # Hand a dead worker's job back after 8 s (longer than this job) and look every second.
    "CELERY_VISIBILITY_TIMEOUT": 8,
    "CELERY_UNACKED_RESTORE_INTERVAL": 1,
    "CELERY_UNACKED_RESTORE_THROTTLE": 1,
}


@pytest.fixture
def private_queue():
    """Route this test's jobs to workers of its own, away from the session's worker."""
    saved = celery_app.conf.task_routes
    celery_app.conf.task_routes = {"lipsync_worker.*": {"queue": QUEUE}}
    celery_app.amqp.flush_routes()
    yield QUEUE
    celery_app.conf.task_routes = saved
    celery_app.amqp.flush_routes()


def test_killed_worker_job_is_redelivered_and_finishes(
    transactional_db, start_worker, private_queue, api, tutor, tmp_path
):
    video = media.write_video(tmp_path / "long.mp4", media.face_frames(10.0))
    doomed = start_worker("doomed", queues=private_queue, **FAST_RECOVERY)
    response = api.post(
        "/api/avatars/create",
        {"tutor_id": tutor.pk, "name": "survivor", "prompt_face": SimpleUploadedFile("v.mp4", video.read_bytes())},
        format="multipart",
    )
    assert response.status_code == 201
    avatar_id = response.json()["id"]

    # Kill it mid-job, once it has written progress (and perhaps files).
    wait_for(lambda: Avatar.objects.get(pk=avatar_id).progress_percent >= 10, timeout=60, message="progress")
    doomed.kill()
    avatar = Avatar.objects.get(pk=avatar_id)
    assert avatar.status == "processing" and avatar.progress_percent < 100

    rescuer = start_worker("rescuer", queues=private_queue, **FAST_RECOVERY)
    wait_for(
        lambda: Avatar.objects.get(pk=avatar_id).status != "processing",
        timeout=90,
        message="the redelivered job to finish",
    )
    avatar = Avatar.objects.get(pk=avatar_id)
    assert avatar.status == "inactive", (avatar.error_message, rescuer.log())
    assert avatar.frame_count == 250
    # Exactly one set of assets: the killed attempt's partial files are gone.
    dirs, _files = default_storage.listdir(f"avatars/{avatar_id}/assets")
    assert dirs == [avatar.task_id]
    assert "preprocess_avatar" in rescuer.log()
