"""A tutor's login in the Django admin, in a real browser (issue 12): the tutor signs in
and sees only its own tutor and avatars, plus one a colleague shared with it (read-only
with `use`); nothing of the other tutor of the same admin, no accounts, no tutor to add."""

from __future__ import annotations

import pytest

from tests.browser import login as _login
from tests.browser import needs_chromium
from tests.browser import shot as _shot
from tests.roles import make_world

pytestmark = [pytest.mark.browser, pytest.mark.integration, needs_chromium]


def test_a_tutor_sees_only_its_avatars_and_one_shared_with_it(
    transactional_db, daphne_server, browser_page, artifacts, admin_user, other_admin, tutor
):
    from avatars import share_services
    from avatars.models import Avatar

    world = make_world(admin_user, other_admin, tutor)
    # Mr Ben's login shares one of his avatars with Ms Ada's, to use.
    shared = Avatar.objects.create(tutor=world.other_tutor, name="ben_shared", status="inactive")
    share_services.avatar_share_create(
        shared, by=world.users["other_tutor"], email="ada.tutor@school.test", permission="use"
    )
    page = browser_page

    _login(page, "ada.tutor@school.test")
    _shot(page, artifacts, "01-tutor-admin-index")
    assert page.locator("a[href='/admin/tutors/user/']").count() == 0  # accounts: operators only

    page.goto("/admin/tutors/tutor/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "Ms Ada" in rows.first.inner_text()
    assert "Mr Ben" not in page.content()
    assert page.locator("a[href='/admin/tutors/tutor/add/']").count() == 0  # a tutor does not create tutors

    page.goto("/admin/avatars/avatar/")
    _shot(page, artifacts, "02-tutor-avatar-list")
    names = " ".join(page.locator("#result_list tbody tr").all_inner_texts())
    assert "secret_avatar" in names and "ben_shared" in names
    assert "ben_avatar" not in names
    assert page.locator("#result_list tbody tr").count() == 2

    # Its own avatar: editable. The shared one: read-only, no delete.
    page.goto(f"/admin/avatars/avatar/{world.avatar.pk}/change/")
    assert page.locator("input[name=_save]").count() == 1
    page.goto(f"/admin/avatars/avatar/{shared.pk}/change/")
    _shot(page, artifacts, "03-shared-avatar-read-only")
    assert page.locator("input[name=_save]").count() == 0
    assert page.locator("a.deletelink").count() == 0
    assert "ben_shared" in page.content()

    # The other tutor's avatar does not exist for it.
    page.goto(f"/admin/avatars/avatar/{world.ben_avatar.pk}/change/")
    assert "/admin/avatars/avatar/" not in page.url or "doesn" in page.content()
    assert "ben_avatar" not in page.locator("#content").inner_text()
