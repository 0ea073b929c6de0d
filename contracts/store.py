"""The Redis both sides share: one client per URL and the project's key naming."""

from __future__ import annotations

import threading

import redis
from django.conf import settings

_clients: dict[tuple[str, bool], redis.Redis] = {}
_lock = threading.Lock()


def client(*, blocking: bool = False) -> redis.Redis:
    """The shared client; `blocking` ones have no read timeout (BLPOP waits as long as asked)."""
    key = (settings.REDIS_URL, blocking)
    with _lock:
        if key not in _clients:
            options = {"socket_timeout": None, "health_check_interval": 30} if blocking else {"socket_timeout": 5}
            _clients[key] = redis.Redis.from_url(key[0], socket_connect_timeout=5, **options)
        return _clients[key]


def redis_key(*parts) -> str:
    """`<REDIS_KEY_PREFIX>:<part>:<part>...`: every key the project writes, so tests and
    deployments sharing one Redis never see each other's."""
    return ":".join([settings.REDIS_KEY_PREFIX, *map(str, parts)])
