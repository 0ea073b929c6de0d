"""The avatar change page in a real browser: "Preview voice" plays speech from the tts
worker, and "Render clip" produces a talking clip that plays in the page."""

import pytest

from tests.browser import login, needs_chromium, shot
from tests.conftest import avatar_create_and_wait

pytestmark = [pytest.mark.browser, pytest.mark.integration, needs_chromium]


def test_preview_voice_and_render_a_clip_from_the_admin(
    transactional_db, celery_worker_process, browser_page, artifacts, api, admin_user, tutor, face_video
):
    avatar = avatar_create_and_wait(api, tutor, face_video, "admin_talker", tts_model="espeak-ng")
    assert avatar["status"] == "inactive"
    page = browser_page
    login(page, admin_user.email)
    page.goto(f"/admin/avatars/avatar/{avatar['id']}/change/")

    page.click("[data-action=preview-voice]")
    page.wait_for_function(
        """() => { const a = document.querySelector('[data-player=voice]');
                   return a && !a.hidden && a.readyState >= 1 && a.duration > 0.5; }""",
        timeout=60_000,
    )
    page.fill("#render-text", "Hello everyone, welcome to class.")
    page.click("[data-action=render]")
    page.wait_for_function(
        """() => { const v = document.querySelector('.avatar-render video');
                   return v && v.readyState >= 1 && v.videoWidth === 320 && v.duration > 1; }""",
        timeout=120_000,
    )
    shot(page, artifacts, "avatar-tools")
    assert not [m for m in page.console_messages if m.startswith("pageerror")], page.console_messages
    assert not [r for r in page.failed_responses if not r.endswith("/favicon.ico")], page.failed_responses
