"""Preprocessing and renders run in prefork children where limits are real: a job past the
memory limit fails with the reason, its process is replaced, nothing is left half-written,
and the worker goes on serving."""

import pytest
from django.core.files.storage import default_storage

from avatars.models import Avatar, AvatarStatus
from tests import media
from tests.avatars.test_avatars_api import _create
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration]


@pytest.fixture
def private_queue(monkeypatch):
    """Send this test's jobs to a worker of its own, away from the session's worker (each
    test stops its worker: the next one takes the queue)."""
    from avatars import services
    from contracts.tasks import task_send

    queue = "lipsync-limits-test"
    monkeypatch.setattr(services, "task_send", lambda *args, **options: task_send(*args, **options, queue=queue))
    return queue


def _finished(avatar_id):
    return Avatar.objects.get(pk=avatar_id).status != AvatarStatus.PROCESSING


def test_a_job_past_the_memory_limit_fails_with_the_reason_and_the_worker_goes_on(
    transactional_db, start_worker, private_queue, api, tutor, tmp_path
):
    # Less than a job needs: the child is stopped as soon as the job starts to work.
    worker = start_worker("memcap", queues=private_queue, pool="prefork", LIPSYNC_JOB_MEMORY_MB=80)
    video = media.write_video(tmp_path / "clip.mp4", media.face_frames(3.0))
    avatar_id = _create(api, tutor, video, "memory_hog")["id"]
    wait_for(lambda: _finished(avatar_id), timeout=90, message="the job to be stopped")
    avatar = Avatar.objects.get(pk=avatar_id)
    assert avatar.status == AvatarStatus.ERROR
    assert "more than 80 MB of memory" in avatar.error_message
    assert not default_storage.exists(f"avatars/{avatar_id}/assets/{avatar.task_id}")
    # The worker replaced its child and still serves: the redelivered message did nothing more.
    assert worker.proc.poll() is None
    assert "replacing this process" in worker.log()
    worker.stop()
