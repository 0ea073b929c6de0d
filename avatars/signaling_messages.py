"""What every signaling socket (a session's, a broadcast viewer's) checks of what a client
sends, before its handlers see it: a message rate, a size, JSON objects with a `type`."""

from __future__ import annotations

import json
import time
from collections import deque

from django.conf import settings

CLOSE_FLOOD = 4429
CLOSE_TOO_BIG = 1009


class SignalingMessagesMixin:
    _recent: deque | None = None

    async def _error(self, detail: str) -> None:
        await self.send_json({"type": "error", "detail": detail})

    def _flooding(self) -> int:
        """0 fine, 1 over the rate (refuse), 2 far over it (close)."""
        if self._recent is None:
            self._recent = deque()
        now = time.monotonic()
        self._recent.append(now)
        while self._recent and now - self._recent[0] > 1.0:
            self._recent.popleft()
        rate = settings.LIVE_MESSAGES_PER_SECOND
        return 2 if len(self._recent) > 3 * rate else 1 if len(self._recent) > rate else 0

    async def message_read(self, text_data) -> dict | None:
        """The client's message, or None when it was refused (the client is told why; a
        flood or an oversized message also closes the socket)."""
        flood = self._flooding()
        if flood == 2:
            await self._error("Too many messages; closing.")
            await self.close(code=CLOSE_FLOOD)
            return None
        if flood == 1:
            await self._error(
                f"Too many messages (more than {settings.LIVE_MESSAGES_PER_SECOND:g} a second); slow down."
            )
            return None
        if text_data is None:
            await self._error("Send JSON text messages.")
            return None
        if len(text_data) > settings.LIVE_MESSAGE_MAX_BYTES:
            await self._error(f"Message too large (at most {settings.LIVE_MESSAGE_MAX_BYTES} bytes).")
            await self.close(code=CLOSE_TOO_BIG)
            return None
        try:
            content = json.loads(text_data)
        except ValueError:
            content = None
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self._error("Messages must be JSON objects with a 'type'.")
            return None
        return content
