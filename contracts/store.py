"""The Redis both sides share: one client per URL and the project's key naming."""

from __future__ import annotations

import threading

import redis
from django.conf import settings

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


def client() -> redis.Redis:
    url = settings.REDIS_URL
    with _lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        return _clients[url]


def redis_key(*parts) -> str:
    """`<REDIS_KEY_PREFIX>:<part>:<part>...`: every key the project writes, so tests and
    deployments sharing one Redis never see each other's."""
    return ":".join([settings.REDIS_KEY_PREFIX, *map(str, parts)])
