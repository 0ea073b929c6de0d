"""The Django admin in a real browser: Debian's chromium driven by Playwright against a
real daphne server and a real Celery worker.

An admin logs in, creates a tutor, uploads a tutor video through the avatar add form and
watches the avatar list: the progress bar and status badge follow the job live (no page
reload) until the badge says "Ready" and the preview thumbnail is shown. Bad uploads show
their reason on the form, a video without a face ends in an error badge with its reason,
and the reprocess and delete actions work from the list.
"""

from __future__ import annotations

import pytest

from tests.browser import login as _login
from tests.browser import needs_chromium
from tests.browser import shot as _shot
from tests.conftest import PASSWORD, wait_for

PROCESS_TIMEOUT_MS = 180_000

pytestmark = [pytest.mark.browser, pytest.mark.integration, needs_chromium]


def _submit(page, name: str = "_save") -> None:
    with page.expect_navigation():
        page.click(f"input[name={name}]")


def _avatar_id(name: str) -> int:
    from avatars.models import Avatar

    return Avatar.objects.get(name=name).pk


def _run_action(page, action: str, avatar_id: int) -> None:
    page.check(f"input[name=_selected_action][value='{avatar_id}']")
    page.select_option("select[name=action]", action)
    with page.expect_navigation():
        page.click("button[name=index]")


def _thumb_loaded(page, avatar_id: int) -> None:
    page.wait_for_function(
        """id => { const img = document.querySelector('img[data-avatar-thumb="' + id + '"]');
                   return img && img.complete && img.naturalWidth > 0; }""",
        arg=avatar_id,
        timeout=30_000,
    )


def test_admin_creates_tutor_and_avatar_and_watches_it_become_ready(
    transactional_db, daphne_server, celery_worker_process, browser_page, artifacts, face_video, noface_video, tmp_path
):
    from tutors.services import admin_create, tutor_create

    page = browser_page
    admin_create(email="ada@school.test", password=PASSWORD)
    other, _ = admin_create(email="bob@other-school.test", password=PASSWORD)
    tutor_create(owner=other, name="Bob's secret tutor")

    _login(page, "ada@school.test")
    _shot(page, artifacts, "01-admin-index")
    # A plain admin does not manage accounts.
    assert page.locator("a[href='/admin/tutors/user/']").count() == 0

    # --- a tutor, made in the admin --------------------------------------------------------
    page.goto("/admin/tutors/tutor/add/")
    assert page.locator("#id_owner").count() == 0  # the owner is the admin itself
    page.fill("#id_name", "Ms Ada")
    page.fill("#id_description", "Maths, grades 5 to 8")
    _submit(page)
    assert "/admin/tutors/tutor/" in page.url
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "Ms Ada" in rows.first.inner_text()
    assert "Bob's secret tutor" not in page.content()
    _shot(page, artifacts, "02-tutor-list")

    # --- the add form offers only the admin's own tutors ------------------------------------
    page.goto("/admin/avatars/avatar/add/")
    options = [o.strip() for o in page.locator("#id_tutor option").all_inner_texts()]
    assert [o for o in options if not o.startswith("---")] == ["Ms Ada"], options
    _shot(page, artifacts, "03-avatar-add-form")

    # A file that is not a video: the service's reason shows on the form, nothing is created.
    bad = tmp_path / "lesson.mp4"
    bad.write_bytes(b"this is not a video at all" * 100)
    page.select_option("#id_tutor", label="Ms Ada")
    page.fill("#id_name", "ada_bad")
    page.set_input_files("#id_prompt_face", str(bad))
    _submit(page)
    assert page.url.endswith("/admin/avatars/avatar/add/")
    # The probe's reason, on the video field itself.
    field_error = page.locator(".field-prompt_face .errorlist").inner_text()
    assert "could not be read" in field_error, page.content()
    _shot(page, artifacts, "04-add-form-bad-video")
    from avatars.models import Avatar

    assert not Avatar.objects.filter(name="ada_bad").exists()

    # --- the real upload ------------------------------------------------------------------
    page.select_option("#id_tutor", label="Ms Ada")
    page.fill("#id_name", "ada_v1")
    page.fill("#id_display_name", "Ada (maths)")
    page.set_input_files("#id_prompt_face", str(face_video))
    _submit(page)
    assert page.url.rstrip("/").endswith("/admin/avatars/avatar"), page.url
    avatar_id = _avatar_id("ada_v1")
    # A marker on the window proves later that the page was never reloaded.
    page.evaluate("window.__sameDocument = 'yes'")
    _shot(page, artifacts, "05-avatar-list-processing")

    badge = page.locator(f"[data-avatar-status='{avatar_id}']")
    page.wait_for_function(
        "id => document.querySelector('[data-avatar-status=\"' + id + '\"]').textContent.trim() === 'Ready'",
        arg=avatar_id,
        timeout=PROCESS_TIMEOUT_MS,
    )
    _thumb_loaded(page, avatar_id)
    assert page.evaluate("window.__sameDocument") == "yes", "the page reloaded instead of updating live"
    assert any(url.endswith(f"/ws/avatars/{avatar_id}/events/") for url in page.websockets), page.websockets
    assert badge.inner_text().strip() == "Ready"
    bar = page.locator(f"[data-avatar-progress='{avatar_id}']")
    assert bar.inner_text().strip() == "100%"
    # The bar fills up (it animates its width, so wait for the end of the transition).
    page.wait_for_function(
        """id => { const bar = document.querySelector('[data-avatar-progress="' + id + '"]');
                   const fill = bar.querySelector('.avatar-progress-fill');
                   return fill.getBoundingClientRect().width >= 0.99 * bar.clientWidth; }""",
        arg=avatar_id,
        timeout=5_000,
    )
    # Everything in the row is visible without scrolling the table sideways.
    overflow = page.evaluate(
        "() => { const r = document.querySelector('#changelist .results'); return r.scrollWidth - r.clientWidth; }"
    )
    assert overflow <= 1, f"the avatar list is {overflow}px too wide for a 1400px window"
    box = page.locator(f"img[data-avatar-thumb='{avatar_id}']").bounding_box()
    assert 30 <= box["width"] <= 80 and 30 <= box["height"] <= 100, box
    _shot(page, artifacts, "06-avatar-list-ready")

    # After a reload the list renders the same state from the server.
    page.reload()
    assert page.locator(f"[data-avatar-status='{avatar_id}']").inner_text().strip() == "Ready"
    _thumb_loaded(page, avatar_id)

    # The change page shows the preview, badge and the read-only details.
    page.goto(f"/admin/avatars/avatar/{avatar_id}/change/")
    preview = page.locator("img.avatar-preview")
    preview.wait_for()
    page.wait_for_function(
        "() => { const i = document.querySelector('img.avatar-preview');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    assert page.locator(f"[data-avatar-status='{avatar_id}']").inner_text().strip() == "Ready"
    _shot(page, artifacts, "07-avatar-change-ready")

    # --- a video without a face: an error badge with its reason -------------------------------
    page.goto("/admin/avatars/avatar/add/")
    page.select_option("#id_tutor", label="Ms Ada")
    page.fill("#id_name", "no_face")
    page.set_input_files("#id_prompt_face", str(noface_video))
    _submit(page)
    noface_id = _avatar_id("no_face")
    page.wait_for_function(
        "id => document.querySelector('[data-avatar-status=\"' + id + '\"]').textContent.trim() === 'Error'",
        arg=noface_id,
        timeout=PROCESS_TIMEOUT_MS,
    )
    reason = Avatar.objects.get(pk=noface_id).error_message
    assert "face" in reason.lower()
    # The reason shows in the row, live.
    note = page.locator(f"[data-avatar-note='{noface_id}']")
    assert note.inner_text().strip() == reason
    assert page.locator(f"[data-avatar-progress='{noface_id}']").inner_text().strip() == "Failed"
    _shot(page, artifacts, "08-avatar-list-error")
    page.goto(f"/admin/avatars/avatar/{noface_id}/change/")
    assert page.locator(f".field-progress_bar [data-avatar-note='{noface_id}']").inner_text().strip() == reason
    _shot(page, artifacts, "09-avatar-change-error")

    # --- actions: reprocess (followed live again), then delete ------------------------------
    page.goto("/admin/avatars/avatar/")
    _run_action(page, "reprocess", avatar_id)
    assert "Reprocessing 1 avatar" in page.locator(".messagelist").inner_text()
    page.evaluate("window.__sameDocument = 'again'")
    page.wait_for_function(
        "id => document.querySelector('[data-avatar-status=\"' + id + '\"]').textContent.trim() === 'Ready'",
        arg=avatar_id,
        timeout=PROCESS_TIMEOUT_MS,
    )
    _thumb_loaded(page, avatar_id)
    assert page.evaluate("window.__sameDocument") == "again"
    assert Avatar.objects.get(pk=avatar_id).status == "inactive"
    _shot(page, artifacts, "10-after-reprocess")

    # Delete: Django's confirmation page, then the service removes row and files.
    from django.core.files.storage import default_storage

    video_path = Avatar.objects.get(pk=noface_id).video_path
    assert default_storage.exists(video_path)
    _run_action(page, "delete_selected", noface_id)
    assert "Are you sure" in page.content()
    _shot(page, artifacts, "11-delete-confirmation")
    with page.expect_navigation():
        page.click("input[type=submit]")
    assert "Successfully deleted 1 avatar" in page.locator(".messagelist").inner_text()
    assert not Avatar.objects.filter(pk=noface_id).exists()
    assert page.locator(f"[data-avatar-status='{noface_id}']").count() == 0
    assert page.locator(f"[data-avatar-status='{avatar_id}']").count() == 1
    wait_for(lambda: not default_storage.exists(video_path), timeout=10, message="the files to go")
    _shot(page, artifacts, "12-after-delete")

    # No script errors and no broken resources (the browser's own favicon probe aside).
    failed = [r for r in page.failed_responses if not r.endswith("/favicon.ico")]
    assert not failed, failed
    errors = [m for m in page.console_messages if m.startswith("pageerror")]
    assert not errors, errors


def test_admin_start_is_queued_and_the_page_follows_it_live(
    transactional_db, daphne_server, celery_worker_process, browser_page, artifacts, admin_user, make_avatar
):
    """Start from the list (action) and from the change page (button): the admin answers at
    once and the status follows the worker over the events socket: Starting… then Active,
    or back to Ready with the reason when the worker cannot load the avatar."""
    from avatars.models import Avatar

    page = browser_page
    good = make_avatar("live_list_ada")
    broken = make_avatar("live_broken_ada", assets_path="live-test/nothing-here")
    button = make_avatar("live_button_ada")
    _login(page, admin_user.email)

    page.goto("/admin/avatars/avatar/")
    page.evaluate("window.__sameDocument = 'start'")
    page.check(f"input[name=_selected_action][value='{good.pk}']")
    page.check(f"input[name=_selected_action][value='{broken.pk}']")
    page.select_option("select[name=action]", "start_live")
    with page.expect_navigation():
        page.click("button[name=index]")
    assert "Starting 2 avatar(s)" in page.locator(".messagelist").inner_text()
    page.evaluate("window.__sameDocument = 'started'")
    page.wait_for_function(
        "id => document.querySelector('[data-avatar-status=\"' + id + '\"]').textContent.trim() === 'Active'",
        arg=good.pk,
        timeout=60_000,
    )
    page.wait_for_function(
        """id => { const note = document.querySelector('[data-avatar-note="' + id + '"]');
                   return note && note.textContent.startsWith('Start failed:'); }""",
        arg=broken.pk,
        timeout=60_000,
    )
    assert page.evaluate("window.__sameDocument") == "started", "the list reloaded instead of updating live"
    assert page.locator(f"[data-avatar-status='{broken.pk}']").inner_text().strip() == "Ready"
    assert Avatar.objects.get(pk=good.pk).status == "active"
    _shot(page, artifacts, "13-start-action-followed-live")

    # The change page's Start button: queued, followed, then the page offers Stop.
    page.goto(f"/admin/avatars/avatar/{button.pk}/change/")
    page.click("button[data-avatar-live=start]")
    page.wait_for_selector("button[data-avatar-live=stop]", timeout=60_000)
    assert page.locator(f"[data-avatar-status='{button.pk}']").inner_text().strip() == "Active"
    _shot(page, artifacts, "14-start-button-active")
    with page.expect_navigation():
        page.click("button[data-avatar-live=stop]")
    page.wait_for_selector("button[data-avatar-live=start]")
    assert Avatar.objects.get(pk=button.pk).status == "inactive"

    errors = [m for m in page.console_messages if m.startswith("pageerror")]
    assert not errors, errors
