"""What a live session counts and records, apart from what it shows.

- Limits: every LIVE_USAGE_ACCOUNT_SECONDS the session's time is added to its tutor's month
  and to its student session token (`contracts.usage`); past the tutor's monthly minutes or
  the token's max_minutes (or with the token expired or revoked) the session ends, saying
  why out loud and in an `error` event.
- Usage analytics: the session opened and closed, each utterance's seconds, errors by kind
  (`analytics.services`, on the loop's executor: the clock never waits, and a record that
  fails never fails the session).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)

LIMIT_NOTICE = "This session has reached its time limit. Goodbye."
# `error` events that end a session by a rule (limits, token, access), not a failure.
SESSION_ENDS_NOT_ERRORS = ("limit", "max_length", "token", "access")


class SessionMeter:
    """The limits one session counts against (from the web's `live_offer_message`) and its
    usage records. Runs on the runtime's event loop."""

    def __init__(self, session, limits: dict | None = None):
        self.session = session
        limits = limits or {}
        self.tutor_id = limits.get("tutor_id")
        self.tutor_max_sessions = int(limits.get("tutor_max_sessions") or 0)
        self.tutor_live_seconds = float(limits.get("tutor_live_seconds") or 0)
        self.token_id = limits.get("token_id")
        self.token_max_seconds = float(limits.get("token_max_seconds") or 0)
        self.token_expires_at = limits.get("token_expires_at")
        self.opened_at: float | None = None  # time.monotonic() of the answer (the duration's start)
        self._speaking_since: dict[int, float] = {}  # utterance id -> its first frame

    @property
    def viewer(self) -> dict:
        """Who watches, for the usage records: the account that opened it, or its token."""
        return {"opened_by": self.session.opened_by, "token_id": self.token_id}

    # --- the session's lifetime -------------------------------------------------------------

    def opened(self) -> None:
        """The session was answered: count its time, link its token, record it."""
        session = self.session
        if self.tutor_id is not None or self.token_id is not None:
            session.spawn(self._account())
        if self.token_id is not None:
            session.spawn(self._record_token())
        self.opened_at = time.monotonic()
        self.record_soon("usage_session_opened", session.avatar.avatar_id, session_id=session.id, **self.viewer)

    async def closed(self, reason: str) -> None:
        """Record the session's end (waited for: the worker may be stopping)."""
        if self.opened_at is None:
            return
        session = self.session
        recorded = self.record_soon(
            "usage_session_closed", session.avatar.avatar_id, session_id=session.id, **self.viewer,
            seconds=time.monotonic() - self.opened_at, reason=reason,
        )  # fmt: skip
        if recorded is not None:
            with contextlib.suppress(Exception):
                await recorded

    def event(self, event: dict) -> None:
        """An event the session sends: utterances' seconds and errors are usage."""
        kind = event.get("type")
        if kind == "speaking_started":
            self._speaking_since[event["utterance"]] = time.monotonic()
        elif kind == "speaking_ended":
            since = self._speaking_since.pop(event["utterance"], None)
            if since is not None:
                self.record_soon(
                    "usage_utterance",
                    self.session.avatar.avatar_id,
                    **self.viewer,
                    seconds=time.monotonic() - since,
                    interrupted=bool(event.get("interrupted")),
                )
        elif kind == "error" and event.get("reason") not in SESSION_ENDS_NOT_ERRORS:
            self.record_soon(
                "usage_session_error",
                self.session.avatar.avatar_id,
                f"session_{event.get('reason') or 'error'}",
                **self.viewer,
                detail=str(event.get("detail") or ""),
            )

    def record_soon(self, name: str, *args, **kwargs):
        """Record usage with `analytics.services.<name>` on an executor thread; the future
        (awaited only at close). It never raises: usage is not worth failing a session."""
        from analytics import services as usage_services

        record = getattr(usage_services, name)
        session = self.session

        def _record():
            try:
                close_old_connections()
                record(*args, **kwargs)
            except Exception:
                logger.warning("Live session %s: usage %s not recorded", session.id, name, exc_info=True)

        try:
            return session.loop.run_in_executor(None, _record)
        except RuntimeError:  # the executor is shut down (the worker is stopping)
            return None

    # --- limits ---------------------------------------------------------------------------------

    async def _record_token(self) -> None:
        """The conversation was opened with a session token: say which (its user is empty)."""
        from conversations.services import conversation_session_token_set

        session = self.session
        conversation_id = getattr(session.dialogue, "conversation_id", None)
        if conversation_id is not None:
            await session.loop.run_in_executor(None, conversation_session_token_set, conversation_id, self.token_id)

    async def _account(self) -> None:
        """Every LIVE_USAGE_ACCOUNT_SECONDS: add the time since the last count to the tutor's
        month and the token, then end the session if it reached the tutor's monthly minutes
        or the token's max_minutes, or the token expired or was revoked."""
        from contracts import usage

        session = self.session
        last = time.monotonic()
        while not session.closed:
            await asyncio.sleep(max(0.05, settings.LIVE_USAGE_ACCOUNT_SECONDS))
            now = time.monotonic()
            seconds, last = now - last, now
            try:
                tutor_total, token_total, revoked = await session.loop.run_in_executor(
                    None, usage.live_seconds_add, self.tutor_id, self.token_id, seconds
                )
            except Exception:  # Redis hiccup: counted at the next try
                logger.warning("Live session %s: usage not counted", session.id, exc_info=True)
                last -= seconds
                continue
            if session.closed:
                return
            if revoked or (self.token_expires_at and time.time() >= self.token_expires_at):
                await session.emit(
                    {"type": "error", "detail": "This session link expired or was revoked.", "reason": "token"}
                )
                await session.close("session token ended")
                return
            if self.tutor_live_seconds and tutor_total >= self.tutor_live_seconds:
                minutes = self.tutor_live_seconds / 60
                detail = (
                    f"The tutor's live minutes for this month ({minutes:g}, monthly_live_minutes) are used up; "
                    "they reset on the 1st of next month (UTC)."
                )
            elif self.token_max_seconds and token_total >= self.token_max_seconds:
                minutes = self.token_max_seconds / 60
                detail = f"This session link's {minutes:g} live minutes (max_minutes) are used up."
            else:
                continue
            await self._end_for_limit(detail)
            return

    async def _end_for_limit(self, detail: str) -> None:
        """Say why (an `error` event with reason "limit", and out loud), then close."""
        session = self.session
        await session.emit({"type": "error", "detail": detail, "reason": "limit"})
        await session.say(LIMIT_NOTICE, interrupt=True, limited=False)
        waited = 0.0
        # Until the notice is spoken (at most 20 s: a TTS failure must not keep the session).
        while not session.closed and session.speaking and waited < 20:
            await asyncio.sleep(0.1)
            waited += 0.1
        await session.close("limit reached")
