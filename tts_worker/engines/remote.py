"""What the engines that talk to a server share: cheap cached reachability and clear errors."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.cache import cache

from contracts.errors import EngineUnavailable

from .base import TTSEngine

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 1.5  # seconds; a model list must never wait on a dead server for longer
UP_TTL = 300
DOWN_TTL = 60


def cached(key: str, ttl: Callable[[object], int], compute: Callable[[], object]):
    """`compute()` cached in Django's cache; a broken cache only costs the recomputation."""
    full_key = f"tts_worker:{key}"
    try:
        value = cache.get(full_key)
    except Exception:  # noqa: BLE001 - availability must not fail because Redis did
        value = None
    if value is not None:
        return value
    value = compute()
    try:
        cache.set(full_key, value, ttl(value))
    except Exception:  # noqa: BLE001
        logger.debug("Could not cache %s", full_key)
    return value


def forget(key: str) -> None:
    try:
        cache.delete(f"tts_worker:{key}")
    except Exception:  # noqa: BLE001
        pass


def tcp_probe(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> str:
    """'' when a TCP connection opens within `timeout` (DNS included), else why not."""
    result = {"error": f"no answer within {timeout:g} s"}

    def attempt():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result["error"] = ""
        except OSError as exc:
            result["error"] = str(exc) or exc.__class__.__name__

    # getaddrinfo ignores socket timeouts: bound the whole attempt with a thread.
    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return result["error"]


def http_probe(url: str, timeout: float = PROBE_TIMEOUT) -> str:
    """'' when the server at `url` answers HTTP at all (any status), else why not."""
    try:
        with httpx.Client(timeout=timeout) as client:
            client.get(url)
        return ""
    except httpx.HTTPError as exc:
        return str(exc) or exc.__class__.__name__


class HTTPEngine(TTSEngine):
    """An engine served by an HTTP server whose base URL is a setting."""

    url_setting = ""
    server_hint = ""  # how to run the server, for the "not configured" reason
    request_timeout = 120.0

    @property
    def base_url(self) -> str:
        return (getattr(settings, self.url_setting, "") or "").rstrip("/")

    def availability(self) -> tuple[bool, str]:
        url = self.base_url
        if not url:
            return False, f"Not configured: set {self.url_setting} to the URL of {self.server_hint}."
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False, f"{self.url_setting} is not an http(s) URL."
        error = cached(f"up:{self.name}:{url}", lambda e: DOWN_TTL if e else UP_TTL, lambda: http_probe(url) or "ok")
        if error != "ok":
            # Tenants see this reason: the server's address stays in the operator's log.
            logger.warning("%s server at %s cannot be reached: %s", self.display_name, url, error)
            return False, f"The {self.display_name} server ({self.url_setting}) cannot be reached."
        return True, ""

    def require_available(self) -> str:
        available, reason = self.availability()
        if not available:
            raise EngineUnavailable(reason)
        return self.base_url

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """One call to the server; every failure becomes an EngineUnavailable that says what happened."""
        url = f"{self.require_available()}{path}"
        try:
            with httpx.Client(timeout=httpx.Timeout(self.request_timeout, connect=5.0)) as client:
                response = client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            forget(f"up:{self.name}:{self.base_url}")
            logger.warning("%s server call %s %s failed: %r", self.display_name, method, url, exc)
            raise EngineUnavailable(f"The {self.display_name} server ({self.url_setting}) did not answer.") from exc
        if response.status_code >= 400:
            # The server's own message (e.g. out of memory) helps; its address stays in the log.
            logger.warning("%s server call %s %s answered %s", self.display_name, method, url, response.status_code)
            raise EngineUnavailable(
                f"The {self.display_name} server answered {response.status_code}: {_error_text(response)}"
            )
        if not response.content:
            raise EngineUnavailable(f"The {self.display_name} server returned no audio.")
        return response


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "detail", "error", "Exception"):
            if body.get(key):
                return str(body[key])[:300]
    return str(body)[:300]
