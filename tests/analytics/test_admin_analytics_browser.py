"""The admin's analytics page in a real browser: plotly.js (served from the installed wheel,
offline) draws the usage charts from the API, with the session cookie."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.browser import login, needs_chromium, shot
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.integration, needs_chromium]


def _usage(world):
    from analytics.services import usage_answer, usage_error, usage_record

    admin = world.users["admin"]
    now = dt.datetime.now(dt.UTC)
    for days_ago in range(0, 20, 2):
        at = now - dt.timedelta(days=days_ago)
        for avatar, seconds in ((world.avatar, 300 + 20 * days_ago), (world.ben_avatar, 120)):
            usage_record("session_opened", avatar_id=avatar.pk, actor_id=admin.pk, at=at)
            usage_record("session_closed", avatar_id=avatar.pk, actor_id=admin.pk, value=seconds, at=at)
            usage_record("utterance", avatar_id=avatar.pk, actor_id=admin.pk, value=seconds / 3, at=at)
    for latency in (180, 220, 260, 300, 900):
        usage_answer(world.avatar.pk, opened_by=admin.pk, token_id=None, first_frame_ms=latency, interrupted=False)
    usage_error(world.ben_avatar.pk, "render", actor_id=admin.pk, detail="The speech is empty.")


@pytest.fixture
def used_world(transactional_db):
    """Made before the browser starts (Playwright's loop would refuse the services' sync calls)."""
    from tests.roles import make_world
    from tutors.services import admin_create, tutor_create

    admin, _ = admin_create(email="ada@school.test", password=PASSWORD)
    other, _ = admin_create(email="bob@other-school.test", password=PASSWORD)
    world = make_world(admin, other, tutor_create(owner=admin, name="Ms Ada"))
    _usage(world)
    return world


def test_the_analytics_page_draws_the_usage_charts(used_world, daphne_server, browser_page, artifacts):
    world = used_world
    page = browser_page
    login(page, "ada@school.test")
    assert page.locator("a[href='/admin/analytics/usageevent/']").count() >= 1  # in the index
    page.goto("/admin/analytics/")
    page.wait_for_function("document.body.dataset.analyticsLoaded === '1'", timeout=30_000)
    for chart in ("sessions", "avatars", "latency", "errors", "error-kinds"):
        # plotly draws each trace as an SVG group with its marks.
        traces = page.locator(f"#chart-{chart} svg.main-svg g.trace")
        assert traces.count() > 0, (chart, page.locator(f"#chart-{chart}").inner_html()[:2000])
    bars = page.locator("#chart-sessions svg.main-svg g.trace.bars g.point path")
    assert bars.count() >= 10  # one bar per day with sessions
    assert "secret_avatar" in page.locator("#chart-avatars").inner_text()
    assert "render" in page.locator("#chart-error-kinds").inner_text()
    assert page.locator("[data-total='Sessions'] strong").inner_text() == "20"
    shot(page, artifacts, "analytics-page")

    # Filtered to one avatar: the figures follow.
    page.select_option("#analytics-avatar", str(world.ben_avatar.pk))
    page.click("#analytics-filters button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector(\"[data-total='Sessions'] strong\").textContent === '10'", timeout=10_000
    )
    assert page.locator("[data-total='Errors'] strong").inner_text() == "1"
    assert "ben_avatar" in page.locator("#chart-avatars").inner_text()
    assert "avatar_id=" in page.locator("#analytics-csv").get_attribute("href")
    shot(page, artifacts, "analytics-one-avatar")
    failed = [r for r in page.failed_responses if not r.endswith("/favicon.ico")]
    assert not failed, failed
    assert not [m for m in page.console_messages if m.startswith("pageerror")], page.console_messages
