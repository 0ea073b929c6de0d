"""Fixtures of the live-session tests: avatar assets made once per run (the real
preprocessing pipeline, in this process), avatars pointing at them, and started avatars
on the real worker."""

from __future__ import annotations

import pytest
from rest_framework_simplejwt.tokens import RefreshToken

from tests.live.client import loopback_only_ice


@pytest.fixture(scope="session", autouse=True)
def _loopback_ice():
    loopback_only_ice()


@pytest.fixture(scope="session")
def live_assets(media_root, face_video, tmp_path_factory):
    """(assets storage prefix, PreprocessResult) of the test face video."""
    from avatars.storage import storage_save
    from lipsync_worker.asset_pipeline import preprocess_video

    out = tmp_path_factory.mktemp("live-assets")
    result = preprocess_video(face_video, out, expected_seconds=2.0)
    prefix = "live-test/assets"
    for name, path in result.files.items():
        storage_save(f"{prefix}/{name}", path)
    return prefix, result


@pytest.fixture
def make_avatar(tutor, live_assets):
    from avatars.models import Avatar, AvatarStatus

    prefix, result = live_assets

    def make(name: str = "live_ada", owner_tutor=None, **fields) -> Avatar:
        values = dict(
            tutor=owner_tutor or tutor,
            name=name,
            display_name=name,
            status=AvatarStatus.INACTIVE,
            assets_path=prefix,
            preview_image_path=f"{prefix}/preview.png",
            avatar_model="viseme",
            tts_model="piper",
            frame_count=result.frame_count,
            width=result.width,
            height=result.height,
            duration_seconds=result.frame_count / 25,
        )
        values.update(fields)
        return Avatar.objects.create(**values)

    return make


@pytest.fixture
def token(admin_user) -> str:
    return str(RefreshToken.for_user(admin_user).access_token)


@pytest.fixture
def started_avatar(transactional_db, celery_worker_process, api, make_avatar):
    avatar = make_avatar()
    response = api.post(f"/api/avatars/{avatar.pk}/start?wait=1", {}, format="json")
    assert response.status_code == 200, (response.content, celery_worker_process.log())
    yield avatar
    api.post(f"/api/avatars/{avatar.pk}/stop")


GEOGRAPHY = (
    "France is a country in western Europe. The capital of France is Paris, a city on the river Seine. "
    "Paris is famous for the Eiffel Tower, which was finished in 1889.\n\n"
    "The longest river in France is the Loire. It flows more than one thousand kilometres into the Atlantic."
)
NATURE = (
    "A spider has eight legs and two body parts. Insects such as ants have six legs.\n\n"
    "The moon goes around the earth about once a month. Its light is sunlight reflected from its surface. "
    "The moon has no air, so there is no weather and no sound there. People first walked on the moon in 1969."
)


@pytest.fixture
def conversing_avatar(transactional_db, celery_worker_process, api, make_avatar):
    """A started avatar with a greeting and a knowledge base of two documents."""
    avatar = make_avatar(name="conv_ada", greeting="Hello, I am Ada.", persona="A patient geography tutor.")
    for title, text in (("Geography of France", GEOGRAPHY), ("Nature facts", NATURE)):
        response = api.post(f"/api/avatars/{avatar.pk}/knowledge", {"title": title, "text": text}, format="json")
        assert response.status_code == 201, response.content
    response = api.post(f"/api/avatars/{avatar.pk}/start?wait=1", {}, format="json")
    assert response.status_code == 200, (response.content, celery_worker_process.log())
    yield avatar
    api.post(f"/api/avatars/{avatar.pk}/stop")
