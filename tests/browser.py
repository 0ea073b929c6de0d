"""Browser fixtures: Debian's chromium driven by Playwright against the real daphne server.
Loaded by tests/conftest.py as a plugin; never downloads a browser. Every test marked
`browser` is skipped, saying what to install, when chromium (or Playwright) is missing."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path

import pytest
from django.db import connections

from tests.conftest import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
]

CHROMIUM_MISSING = (
    f"Debian's chromium is not installed at {CHROMIUM}: install it with `apt-get install chromium` "
    "(`make setup` does so when run as root)"
)
PLAYWRIGHT_MISSING = "Playwright is not installed: pip install -r requirements-dev.txt (`make setup` does)"


def browser_skip_reason() -> str | None:
    if not os.path.exists(CHROMIUM):
        return CHROMIUM_MISSING
    if importlib.util.find_spec("playwright") is None:
        return PLAYWRIGHT_MISSING
    return None


needs_chromium = pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or "")


def pytest_collection_modifyitems(config, items):
    """Skip every test marked `browser` when it cannot run here, with what to install. Put
    first on the item, so that this reason wins over a module's own, vaguer skipif."""
    reason = browser_skip_reason()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.skipif(True, reason=reason), append=False)


@pytest.fixture
def artifacts(tmp_path, request) -> Path:
    folder = Path(os.environ.get("TEST_ARTIFACTS_DIR") or tmp_path) / request.node.module.__name__.rsplit(".", 1)[-1]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser_page(daphne_server, artifacts, monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls
    # are still plain synchronous code (Django's documented switch for this case).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=daphne_server.url, viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        console: list[str] = []
        page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
        failed: list[str] = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.console_messages = console
        page.websockets = sockets
        page.failed_responses = failed
        try:
            yield page
        finally:
            with contextlib.suppress(Exception):  # the page may be gone already
                page.screenshot(path=str(artifacts / "zz-last.png"), full_page=True)
            context.close()
            browser.close()
            # While Playwright's loop runs, Django keys its connections to that context:
            # close the ones the test opened, or they outlive the test database.
            connections.close_all()


def shot(page, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def login(page, email: str) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
