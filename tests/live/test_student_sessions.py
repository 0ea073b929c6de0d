"""Students with a session token, end to end: the talk page opened from its link alone (no
sign-in) connects to a started avatar and hears it speak; a session ends with a spoken
notice when its token's live minutes are used up, and its conversation has no user."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from django.db import connections

from avatars.models import Avatar
from contracts import usage
from contracts.store import client as redis_client
from tests.browser import CHROMIUM
from tests.live.client import LiveClient, loopback_only_ice
from tests.live.test_talk_page import TALK_ARGS

pytestmark = [pytest.mark.integration]


@pytest.mark.browser
def test_a_student_talks_to_the_avatar_with_the_link_alone(started_avatar, daphne_server, api, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    response = api.post(f"/api/avatars/{started_avatar.pk}/session-tokens", {"label": "4B"}, format="json")
    assert response.status_code == 201, response.content
    raw = response.json()["token"]
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    console: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=TALK_ARGS)
        page = browser.new_context(base_url=daphne_server.url).new_page()  # no cookies, no admin login
        page.set_default_timeout(30_000)
        page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
        try:
            page.goto(f"/talk/{raw}/")
            page.wait_for_function("document.getElementById('talk-state').dataset.state === 'connected'")
            page.wait_for_function("""() => { const v = document.getElementById('talk-video');
                return v.readyState >= 2 && v.videoWidth > 0 && !v.paused; }""")
            page.fill("#talk-text", "Welcome to the lesson. Today we study fractions.")
            page.click("#talk-speak")
            page.wait_for_function("document.getElementById('talk-subtitles').textContent.trim().length > 0")
            text = page.text_content("#talk-subtitles")
            assert any(word in text for word in ("Welcome", "lesson", "Today", "fractions")), text
            assert not page.is_visible("#talk-error"), page.text_content("#talk-error")
            assert page.context.cookies() == []  # nothing but the token
        except Exception as exc:  # noqa: BLE001 - keep a screenshot and the console, then fail
            with contextlib.suppress(Exception):
                page.screenshot(path=str(tmp_path / "student-talk.png"))
            state = page.evaluate("document.getElementById('talk-state').dataset.state")
            raise AssertionError("\n".join([f"{exc} (state {state})", page.url, *console[-30:]])) from None
        finally:
            browser.close()
            connections.close_all()


def test_a_session_ends_with_a_spoken_notice_when_its_token_minutes_are_used(
    transactional_db, start_worker, daphne_server, api, make_avatar
):
    from conversations.models import Conversation
    from lipsync_worker.tasks import live_start_task

    loopback_only_ice()
    worker = start_worker("token-minutes", queues="token-minutes", LIVE_USAGE_ACCOUNT_SECONDS=1)
    avatar = make_avatar("token_minutes")
    outcome = live_start_task.apply_async(args=[avatar.pk, "", ""], queue="token-minutes").get(timeout=60)
    assert outcome["status"] == "active", (outcome, worker.log())
    created = api.post(f"/api/avatars/{avatar.pk}/session-tokens", {"max_minutes": 1}, format="json").json()
    raw, token_id = created["token"], created["id"]
    # As if the link had been used for 57 of its 60 s already: this session has about 3 s.
    redis_client().set(usage._token_key(token_id), 57)
    result = {}

    async def scenario():
        student = LiveClient(daphne_server.ws_url, avatar.pk, raw, keep_frames=False, protocol="token")
        result["answer"] = await student.connect()
        result["limit"] = await student.wait_event(lambda e: e["type"] == "error" and e.get("reason") == "limit", 30)
        result["spoken"] = await student.wait_event(lambda e: e["type"] == "speaking_started", 20)
        result["closed"] = await student.wait_event(
            lambda e: e.get("type") == "state" and e.get("state") == "closed", 30
        )
        result["session"] = student.session_id
        await student.close(bye=False)
        again = LiveClient(daphne_server.ws_url, avatar.pk, raw, keep_frames=False, protocol="token")
        result["again"] = await again.connect()
        await again.close(bye=False)

    try:
        asyncio.run(scenario())
    finally:
        from avatars import live_services

        live_services.avatar_stop(avatar=Avatar.objects.get(pk=avatar.pk))
    assert result["answer"]["type"] == "answer", (result, worker.log())
    assert "max_minutes" in result["limit"]["detail"], result["limit"]
    assert result["closed"]["reason"] == "limit reached"
    assert usage.token_seconds_used(token_id) >= 60
    # No more minutes: the next session is refused, saying why.
    assert result["again"]["type"] == "error" and "max_minutes" in result["again"]["detail"], result["again"]
    conversation = Conversation.objects.get(session_id=result["session"])
    assert conversation.user_id is None and conversation.session_token_id == token_id
