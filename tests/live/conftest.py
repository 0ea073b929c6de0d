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
