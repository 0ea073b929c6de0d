"""Avatars of the conversation tests, inserted as rows (no upload, nothing is enqueued)."""

import pytest

from avatars.models import Avatar, AvatarStatus
from tutors.services import tutor_create


def make_avatar(tutor, name: str, **fields) -> Avatar:
    fields = {
        "display_name": name.title(),
        "status": AvatarStatus.INACTIVE,
        "video_path": f"avatars/{name}/source/video.mp4",
        "task_id": f"task-{name}",
        **fields,
    }
    return Avatar.objects.create(tutor=tutor, name=name, **fields)


@pytest.fixture
def avatar(tutor):
    return make_avatar(tutor, "ada_tutor")


@pytest.fixture
def other_avatar(other_admin):
    return make_avatar(tutor_create(owner=other_admin, name="Mr Bob", description="Physics"), "bob_tutor")
