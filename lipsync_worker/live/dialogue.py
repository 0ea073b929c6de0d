"""Turn-taking in a live session: the student asks (by voice or typed), the avatar answers.

A question ends any answer in progress; the answer is thought on a thread of the loop's
executor (knowledge search, then the avatar's responder, its text cut into sentences as
it streams) and each sentence is said as soon as it is complete, so the avatar starts
speaking while the rest is still generated. When the student starts speaking over an
answer, the answer stops (barge-in). Every turn is recorded in the avatar's conversation
(`conversations.services`), with the latency breakdown of each answer measured from the
moment the student stopped speaking (or the typed question arrived).

Everything here runs on the runtime's event loop, except `_think` (a thread) which only
posts back to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections

from contracts.conversation import (
    EVENT_ANSWER_TEXT,
    EVENT_LISTENING,
    EVENT_TURN,
    EVENT_TURN_ENDED,
    EVENT_USER_TRANSCRIPT,
    ChatTurn,
    ResponderRequest,
)
from contracts.errors import ServiceError

from .frames import Utterance
from .listener import HeardQuestion, Listener

logger = logging.getLogger(__name__)

# An answer is cut after this much text (an LLM server that ignores max_tokens must not
# make the avatar talk on and on).
ANSWER_MAX_CHARS = 2000
# A first sentence longer than ~3x this is spoken in two, its first clause first: the tts
# worker synthesises a short piece sooner, so the student hears the answer begin sooner.
FIRST_CLAUSE_MIN_CHARS = 14


def _ms(start: float, end: float | None) -> int | None:
    return None if end is None else max(0, round((end - start) * 1000))


@dataclass(eq=False)
class Answer:
    """One answer being thought and said, and its timings (time.monotonic())."""

    question: str
    asked_at: float  # the student stopped speaking, or the typed question arrived
    asr_done: float | None = None
    first_token: float | None = None
    first_frame: float | None = None
    sentences: list[str] = field(default_factory=list)
    utterances: list[Utterance] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    interrupted: bool = False
    task: asyncio.Task | None = None

    @property
    def first_audio(self) -> float | None:
        return self.utterances[0].first_audio_at if self.utterances else None

    def latencies(self, ended: float | None = None) -> dict:
        """From the end of the question to each step; with `ended`, also to the answer's end
        (`total_ms`: said to its last word, or interrupted)."""
        figures = {
            "asr_ms": _ms(self.asked_at, self.asr_done),
            "first_token_ms": _ms(self.asked_at, self.first_token),
            "first_audio_ms": _ms(self.asked_at, self.first_audio),
            "first_frame_ms": _ms(self.asked_at, self.first_frame),
        }
        if ended is not None:
            figures["total_ms"] = _ms(self.asked_at, ended)
        return figures


class Dialogue:
    """The conversation of one live session: hears the student through a Listener, answers
    through the avatar's responder, says the answers through the session, records it all."""

    def __init__(self, session):
        self.session = session
        self.loop = asyncio.get_running_loop()
        self.settings: dict = {}
        self.conversation_id: int | None = None
        self.history: list[ChatTurn] = []
        self.answer: Answer | None = None
        self.listener: Listener | None = None
        self.greeted = False
        self._by_utterance: dict[int, Answer] = {}
        # One question at a time: a second one waits until the first has stopped its answer.
        self._asking = asyncio.Lock()
        # Turns are written in order, by one thread (the session's own), before it closes.
        self._records = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"live-record-{session.id[:6]}")

    # --- lifetime ---------------------------------------------------------------------

    async def open(self) -> None:
        """Read how the avatar converses and open its conversation record."""
        from avatars.live_selectors import live_conversation_settings
        from conversations.services import conversation_open

        session = self.session

        def _open():
            close_old_connections()  # executor threads keep theirs: drop a broken one first
            config = live_conversation_settings(session.avatar.avatar_id)
            record = conversation_open(
                avatar_id=session.avatar.avatar_id, user_id=session.opened_by, session_id=session.id
            )
            return config, record.pk

        self.settings, self.conversation_id = await self.loop.run_in_executor(None, _open)

    def hear(self, track) -> None:
        """The page sent its microphone: listen to it."""
        if self.listener is not None or not self.settings:
            return
        self.listener = Listener(
            asr_model=self.settings["asr_model"],
            language=self.settings["language"] or "en",
            on_speech_start=self._speech_started,
            on_partial=self._partial,
            on_question=self._heard,
            on_error=self._listener_failed,
            name=self.session.id[:6],
        )
        self.listener.attach(track)

    async def greet(self) -> None:
        """Once, when the viewer is connected: the avatar's greeting, if it has one."""
        if self.greeted or not self.settings.get("greeting"):
            return
        self.greeted = True
        greeting = self.settings["greeting"]
        await self.session.say(greeting, limited=False)
        self.history.append(ChatTurn("avatar", greeting))
        self._record_soon("avatar", greeting, time.time())

    async def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        answer = self.answer
        if answer is not None:
            answer.cancel.set()  # the responder stops reading (an LLM stream is closed)
            if answer.task is not None and answer.task is not asyncio.current_task():
                answer.task.cancel()
            await self._end_answer(answer, interrupted=True)
        if self.conversation_id is not None:
            from conversations.services import conversation_close

            conversation_id, self.conversation_id = self.conversation_id, None

            def _close():
                close_old_connections()
                conversation_close(conversation_id)

            with contextlib.suppress(Exception):  # after the turns queued before it
                await self.loop.run_in_executor(self._records, _close)
        self._records.shutdown(wait=False)

    # --- what the listener hears (event loop) -------------------------------------------

    def _speech_started(self) -> None:
        self._emit({"type": EVENT_LISTENING, "speaking": True})
        if self.answer is not None or self.session.speaking:
            self._spawn(self.stop_answer())  # barge-in

    def _partial(self, text: str) -> None:
        if text:
            self._emit({"type": EVENT_USER_TRANSCRIPT, "text": text, "final": False})

    def _heard(self, heard: HeardQuestion) -> None:
        self._emit({"type": EVENT_LISTENING, "speaking": False})
        text = heard.text[: settings.CONVERSATION_MAX_QUESTION_CHARS]
        if not any(ch.isalnum() for ch in text):
            return  # a cough, noise: nothing to answer
        self._emit({"type": EVENT_USER_TRANSCRIPT, "text": text, "final": True})
        self._spawn(self.ask(text, asked_at=heard.speech_end, asr_done=heard.asr_done))

    def _listener_failed(self, detail: str) -> None:
        self._emit({"type": "error", "detail": detail, "reason": "asr"})

    # --- questions and answers ----------------------------------------------------------

    async def ask(self, text: str, *, asked_at: float | None = None, asr_done: float | None = None) -> None:
        """Answer `text` (a transcribed or typed question), ending any answer in progress."""
        async with self._asking:
            if self.session.closed:
                return
            await self.stop_answer()
            text = text.strip()[: settings.CONVERSATION_MAX_QUESTION_CHARS]
            now = time.monotonic()
            answer = self.answer = Answer(text, asked_at or now, asr_done=asr_done)
            self._record_soon("student", text, time.time() - (now - answer.asked_at))
            self.history.append(ChatTurn("student", text))
            answer.task = self.loop.create_task(self._answer(answer))

    async def stop_answer(self) -> None:
        """Barge-in or a new question: stop thinking and speaking the current answer."""
        answer = self.answer
        if answer is None:
            if self.session.speaking:
                await self.session.interrupt()
            return
        answer.cancel.set()  # before any await: no sentence of it is queued after this
        if answer.task is not None and answer.task is not asyncio.current_task():
            answer.task.cancel()
        await self.session.interrupt()
        await self._end_answer(answer, interrupted=True)

    async def _answer(self, answer: Answer) -> None:
        pieces: asyncio.Queue = asyncio.Queue()
        request = ResponderRequest(
            question=answer.question,
            persona=self.settings.get("persona", ""),
            avatar_name=self.settings.get("avatar_name", ""),
            language=self.settings.get("language") or "en",
            history=tuple(self.history[-settings.CONVERSATION_MEMORY_TURNS - 1 : -1]),
            fallback=settings.CONVERSATION_FALLBACK_ANSWER,
            max_sentences=settings.KNOWLEDGE_ANSWER_SENTENCES,
        )
        thinking = self.loop.run_in_executor(
            None, _think, self.session.avatar.avatar_id, self.settings.get("llm_model", ""), request, answer.cancel,
            lambda *item: self.loop.call_soon_threadsafe(pieces.put_nowait, item),
        )  # fmt: skip
        failed = False
        try:
            while True:
                kind, value = await pieces.get()
                if kind == "first_token":
                    answer.first_token = value
                elif kind == "sentence":
                    await self._say(answer, value)
                elif kind == "error":
                    failed = True
                    self._emit({"type": "error", "detail": value, "reason": "responder"})
                    if not answer.sentences:
                        await self._say(answer, settings.CONVERSATION_FALLBACK_ANSWER)
                elif kind == "done":
                    break
        finally:
            answer.cancel.set()
            with contextlib.suppress(Exception):
                await asyncio.shield(thinking)
        if failed:
            logger.info("Live session %s: the responder failed; said the fallback", self.session.id)
        # Recorded once its last sentence has been said (`on_speaking_ended`), or now when
        # nothing of it is still to be said (nothing came, or its speech failed).
        if answer is self.answer and not any(u.id in self._by_utterance for u in answer.utterances):
            await self._end_answer(answer, interrupted=False)

    async def _say(self, answer: Answer, sentence: str) -> None:
        if answer is not self.answer or answer.cancel.is_set():
            return
        answer.sentences.append(sentence)
        self._emit({"type": EVENT_ANSWER_TEXT, "text": " ".join(answer.sentences)})
        utterance = await self.session.say(sentence, limited=False)
        if utterance is not None:
            answer.utterances.append(utterance)
            self._by_utterance[utterance.id] = answer

    # --- what the clock says about the answer's utterances (event loop) ------------------

    def on_speaking_started(self, utterance_id: int) -> None:
        answer = self._by_utterance.get(utterance_id)
        if answer is None or answer.first_frame is not None:
            return
        answer.first_frame = time.monotonic()
        self._emit({"type": EVENT_TURN, "question": answer.question, "latencies": answer.latencies()})

    def on_speaking_ended(self, utterance_id: int) -> None:
        answer = self._by_utterance.pop(utterance_id, None)
        if answer is None or answer is not self.answer:
            return
        done = answer.task is None or answer.task.done()
        if done and answer.utterances and answer.utterances[-1].id == utterance_id:
            self._spawn(self._end_answer(answer, interrupted=False))

    async def _end_answer(self, answer: Answer, *, interrupted: bool) -> None:
        """Record `answer` once, if it still is the current one (a later question or a
        barge-in may have ended it already)."""
        if answer is not self.answer:
            return
        self.answer = None
        for utterance in answer.utterances:
            self._by_utterance.pop(utterance.id, None)
        text = " ".join(answer.sentences)
        if text:
            self.history.append(ChatTurn("avatar", text))
            started = time.time() - (time.monotonic() - answer.asked_at)
            latency = answer.latencies(ended=time.monotonic())
            self._record_soon("avatar", text, started, latency=latency, interrupted=interrupted)
            self._emit({"type": EVENT_TURN_ENDED, "interrupted": interrupted, "total_ms": latency["total_ms"]})
            self.session.meter.record_soon(
                "usage_answer", self.session.avatar.avatar_id, **self.session.meter.viewer,
                first_frame_ms=latency["first_frame_ms"], interrupted=interrupted,
            )  # fmt: skip

    # --- plumbing -------------------------------------------------------------------------

    def _record_soon(self, role: str, text: str, started_at: float, **fields) -> None:
        if self.conversation_id is None:
            return
        from datetime import UTC, datetime

        from conversations.services import conversation_turn_add

        conversation_id = self.conversation_id
        started = datetime.fromtimestamp(started_at, UTC)

        def _record():
            try:
                close_old_connections()
                conversation_turn_add(
                    conversation_id, role=role, text=text, started_at=started, ended_at=datetime.now(UTC), **fields
                )
            except Exception:  # the conversation goes on without its record
                logger.warning("Could not record a turn of conversation %s", conversation_id, exc_info=True)

        self.loop.run_in_executor(self._records, _record)

    def _emit(self, event: dict) -> None:
        self.session.emit_soon(event)

    def _spawn(self, coro) -> None:
        self.session.spawn(coro)


def _think(avatar_id: int, responder_name: str, request: ResponderRequest, cancel: threading.Event, post) -> None:
    """A thread: the passages, then the responder's sentences as they come; posts
    ("first_token", t), ("sentence", text), ("error", detail) and always ("done", None)."""
    from conversations.selectors import knowledge_search

    from ..conversation.responders import responder_get
    from ..conversation.sentences import sentence_stream

    def pieces(stream):
        first = True
        for piece in stream:
            if first and piece.strip():
                post("first_token", time.monotonic())
                first = False
            yield piece

    try:
        close_old_connections()
        passages = knowledge_search(avatar_id, request.question)
        request = ResponderRequest(**{**request.__dict__, "passages": tuple(passages)})
        responder = responder_get(responder_name or "knowledge")
        stream = pieces(responder.respond(request, cancel))
        said = 0
        for sentence in sentence_stream(stream, first_min_chars=FIRST_CLAUSE_MIN_CHARS):
            if cancel.is_set():
                break
            post("sentence", sentence)
            said += len(sentence)
            if said >= ANSWER_MAX_CHARS:
                cancel.set()  # the responder stops (and closes its stream)
                break
    except ServiceError as exc:
        post("error", exc.detail)
    except Exception:
        logger.exception("Answering failed")
        post("error", "Answering failed on the worker (the error is in its log).")
    finally:
        close_old_connections()
        post("done", None)
