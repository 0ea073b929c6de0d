import shutil

import pytest

from tests.conftest import _client_for


@pytest.fixture
def queued(monkeypatch):
    """Nothing is really enqueued (no worker takes these jobs)."""
    from avatars import services

    monkeypatch.setattr(services, "task_send", lambda *args, **kwargs: None)


@pytest.fixture
def tutor_api(tutor):
    """The API as Ms Ada's own login (a tutor account of admin ada)."""
    from tests.conftest import PASSWORD
    from tutors import account_services

    user = account_services.tutor_account_create(tutor, email="ada.tutor@school.test", password=PASSWORD).user
    return _client_for(user)


@pytest.fixture
def operator_api(operator):
    return _client_for(operator)


@pytest.fixture
def videos(tmp_path, face_video, noface_video):
    """Two good clips, one without a face (accepted, fails in preprocessing), one corrupt."""
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(face_video, folder / "Ada Lovelace.mp4")
    shutil.copy(face_video, folder / "bob.mp4")
    shutil.copy(noface_video, folder / "coffee.mp4")
    (folder / "broken.mp4").write_bytes(b"this is not a video at all" * 100)
    return folder


def template_payload(**fields) -> dict:
    payload = {
        "name": "Calm physics",
        "description": "Physics, slowly.",
        "tts_model": "piper",
        "timbre": "joe",
        "avatar_blur": True,
        "persona": "You are a calm physics tutor.",
        "greeting": "Hello from physics.",
        "language": "fr",
        "documents": [
            {"title": "Newton", "text": "Force equals mass times acceleration."},
            {"title": "Energy", "text": "Energy is conserved in a closed system."},
        ],
    }
    payload.update(fields)
    return payload
