"""The talk page in Debian's chromium (Playwright): the video plays, a sentence is
spoken, subtitles appear. WebRTC stays on loopback (see tests/live/client.py)."""

from __future__ import annotations

import contextlib

import pytest
from django.db import connections

from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import PASSWORD

# Loopback-only WebRTC: real addresses instead of mDNS names (which the worker would
# otherwise have to resolve on the network; it drops every non-loopback candidate anyway).
TALK_ARGS = [*CHROMIUM_ARGS, "--disable-features=WebRtcHideLocalIpsWithMdns"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
]


@contextlib.contextmanager
def signed_in_page(server, user, next_url: str, tmp_path, args=TALK_ARGS):
    """Chromium signed into the admin as `user`, on `next_url`; on any failure the test
    fails with a screenshot kept and the browser's last console lines."""
    from playwright.sync_api import sync_playwright

    console: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        page = browser.new_context(base_url=server.url).new_page()
        page.set_default_timeout(30_000)
        page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
        try:
            page.goto(f"/admin/login/?next={next_url}")
            page.fill("#id_username", user.email)
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"**{next_url}")
            yield page
        except Exception as exc:  # noqa: BLE001 - any failure: keep a screenshot and the console, then fail
            with contextlib.suppress(Exception):
                page.screenshot(path=str(tmp_path / "talk.png"))
                console.append(f"page text: {page.inner_text('body')[:2000]}")
            raise AssertionError("\n".join([repr(exc)[:2000], *console[-30:]])) from None
        finally:
            browser.close()
            connections.close_all()


def test_talk_page_plays_speaks_and_subtitles(started_avatar, daphne_server, admin_user, tmp_path, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    change = f"/admin/avatars/avatar/{started_avatar.pk}/change/"
    with signed_in_page(daphne_server, admin_user, change, tmp_path) as page:
        # The avatar's admin page links to the talk page.
        with page.expect_navigation():
            page.click(f"a.avatar-talk-link[href='/avatars/{started_avatar.pk}/talk/']")
        page.wait_for_function("document.getElementById('talk-state').dataset.state === 'connected'")
        page.wait_for_function("""() => { const v = document.getElementById('talk-video');
            return v.readyState >= 2 && v.videoWidth > 0 && v.currentTime > 0.5 && !v.paused; }""")
        assert page.evaluate("document.getElementById('talk-video').videoWidth") == started_avatar.width
        page.fill("#talk-text", "Welcome to the lesson. Today we study fractions.")
        page.click("#talk-speak")
        page.wait_for_function("document.getElementById('talk-subtitles').textContent.trim().length > 0")
        text = page.text_content("#talk-subtitles")
        assert any(word in text for word in ("Welcome", "lesson", "Today", "fractions")), text
        page.screenshot(path=str(tmp_path / "talk-speaking.png"))
        page.click("#talk-interrupt")
        page.wait_for_function("document.getElementById('talk-subtitles').dataset.speaking === '0'")
        assert not page.is_visible("#talk-error"), page.text_content("#talk-error")


def test_talk_page_is_scoped(started_avatar, daphne_server, other_admin, client):
    client.force_login(other_admin)
    assert client.get(f"/avatars/{started_avatar.pk}/talk/").status_code == 404
    client.logout()
    assert client.get(f"/avatars/{started_avatar.pk}/talk/").status_code == 302  # to the admin login


def test_a_student_asks_out_loud_on_the_talk_page_and_hears_the_answer(
    conversing_avatar, daphne_server, admin_user, tmp_path, monkeypatch
):
    """Chromium's fake microphone plays a spoken question (piper) once the student turns the
    microphone on; the page shows the transcript and the answer from the knowledge base."""
    import wave

    import numpy as np

    from tests.conversation.speech import piper_speech, silence

    speech = np.concatenate([silence(1.0), piper_speech("What is the capital of France?"), silence(6.0)])
    question = tmp_path / "question.wav"
    with wave.open(str(question), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(speech, -1, 1) * 32767).astype(np.int16).tobytes())
    args = [
        *TALK_ARGS,
        "--use-fake-ui-for-media-stream",  # grants the microphone without asking
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={question}%noloop",
    ]
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    talk = f"/avatars/{conversing_avatar.pk}/talk/"
    with signed_in_page(daphne_server, admin_user, talk, tmp_path, args=args) as page:
        page.wait_for_function("document.getElementById('talk-state').dataset.state === 'connected'")
        page.click("#talk-mic")
        page.wait_for_selector("#talk-mic[aria-pressed='true']")  # once the browser gave the microphone
        # What the page heard, then the avatar's answer (the words themselves are checked by
        # tests/live/test_conversation.py: a fake microphone on a loaded machine may garble them).
        page.wait_for_function(
            """() => [...document.querySelectorAll('#talk-transcript li.student')]
                .some((li) => li.dataset.final === '1' && li.textContent.trim().length > 0)"""
        )
        page.wait_for_function(
            """() => [...document.querySelectorAll('#talk-transcript li.avatar')]
                .some((li) => li.textContent.trim().length > 0)"""
        )
        page.screenshot(path=str(tmp_path / "talk-conversation.png"))
        assert not page.is_visible("#talk-error"), page.text_content("#talk-error")
