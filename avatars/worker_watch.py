"""A session socket watches the heartbeat of the worker its session runs on.

A worker that is killed (SIGKILL, its machine gone) sends no goodbye: without this the
viewer would watch a frozen picture. The socket checks the worker's heartbeat every
LIVE_HEARTBEAT_SECONDS and, once it has expired, tells the viewer with an `error` and a
closed `state` (the avatar can then be started again: placement puts it elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib

from asgiref.sync import sync_to_async
from django.conf import settings

from contracts import live_registry as registry

WORKER_LOST = (
    "The lip-sync server of this session stopped responding; start the avatar again (it will start on another server)."
)


def _worker_known_dead(channel: str) -> bool:
    # A channel Redis forgot (restarted without its data) is not judged until it beats again.
    return bool(registry.workers_known_dead([channel]))


class WorkerWatchMixin:
    _worker_watch: asyncio.Task | None = None

    def worker_watch_start(self, channel: str) -> None:
        self.worker_watch_stop()
        self._worker_watch = asyncio.get_running_loop().create_task(self._watch_worker(channel))

    def worker_watch_stop(self) -> None:
        task, self._worker_watch = self._worker_watch, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _watch_worker(self, channel: str) -> None:
        dead = sync_to_async(_worker_known_dead, thread_sensitive=False)
        while True:
            await asyncio.sleep(settings.LIVE_HEARTBEAT_SECONDS)
            try:
                if not await dead(channel):
                    continue
            except Exception:  # noqa: BLE001 - Redis away: RedisLostMixin tells the viewer about that
                continue
            with contextlib.suppress(Exception):  # the client may be gone already
                await self.worker_lost(WORKER_LOST)
            return

    async def worker_lost(self, detail: str) -> None:
        """The session's worker is gone (override to forget the session)."""
