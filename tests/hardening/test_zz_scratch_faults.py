import pytest

from tests.hardening.test_faults import *  # noqa
from tests.hardening.test_faults import _api, _tts_ready

pytestmark = [pytest.mark.integration]


def test_scratch_upload_with_redis_down(system, admin_user, tutor, face_video, media_root):
    from avatars.models import Avatar

    api = _api(system["web"], admin_user)
    _tts_ready(api)
    system["redis"].stop()
    with open(face_video, "rb") as fh:
        r = api.post(
            "/api/avatars/create",
            data={"tutor_id": str(tutor.pk), "name": "qdown"},
            files={"prompt_face": ("t.mp4", fh, "video/mp4")},
        )
    print("ANSWER", r.status_code, r.text[:300])
    print("ROWS", list(Avatar.objects.values_list("pk", "status", "video_path")))
    for a in Avatar.objects.all():
        print(
            "FILES",
            a.pk,
            sorted(p.name for p in (media_root / a.storage_prefix).rglob("*"))
            if (media_root / a.storage_prefix).exists()
            else None,
        )
    system["redis"].start()
