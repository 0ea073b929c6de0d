"""The session's dialogue with its real responders, knowledge search and the stand-in LLM
server; only the media side of the session (what says the sentences) is a recorder here.
What a student would notice: the answer is said sentence by sentence, an LLM that is down
or slow gets a spoken fallback and an error event (never silence), and a new question ends
the answer in progress."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from lipsync_worker.live.dialogue import Dialogue

pytestmark = pytest.mark.django_db(transaction=True)

FALLBACK = "Sorry, I cannot answer that right now."


class SpokenSession:
    """The parts of a LiveSession the dialogue uses, recording what it is told to say."""

    _ids = itertools.count(1)

    def __init__(self, avatar_id: int):
        self.id = f"test-session-{next(self._ids)}"
        self.avatar = type("LiveAvatar", (), {"avatar_id": avatar_id})()
        self.opened_by = None
        self.closed = False
        self.speaking = False
        self.said: list[str] = []
        self.events: list[dict] = []
        self.interrupts = 0
        # Usage records are the analytics tests' business: nothing is recorded here.
        self.meter = type("Meter", (), {"viewer": {}, "record_soon": staticmethod(lambda *a, **k: None)})()

    async def say(self, text, *, limited=True, **_):
        self.said.append(text)
        return None

    async def interrupt(self):
        self.interrupts += 1

    def emit_soon(self, event):
        self.events.append(event)

    def spawn(self, coro):
        asyncio.get_running_loop().create_task(coro)


@pytest.fixture
def avatar(tutor):
    from avatars.models import Avatar
    from conversations.services import knowledge_document_add

    avatar = Avatar.objects.create(tutor=tutor, name="dialogue_ada", status="inactive", llm_model="openai")
    knowledge_document_add(avatar, title="Geography", text="The capital of France is Paris. Paris is on the Seine.")
    return avatar


def _converse(avatar, *questions, wait: float = 8.0, between: float = 0.0) -> SpokenSession:
    async def main():
        session = SpokenSession(avatar.pk)
        dialogue = Dialogue(session)
        dialogue.settings = {
            "persona": "A cheerful geography tutor.",
            "avatar_name": "Ada",
            "language": "en",
            "asr_model": "pocketsphinx",
            "llm_model": avatar.llm_model,
        }
        for question in questions:
            await dialogue.ask(question)
            await asyncio.sleep(between)
        deadline = time.monotonic() + wait
        while dialogue.answer is not None and dialogue.answer.task and not dialogue.answer.task.done():
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        await dialogue.close()
        return session

    return asyncio.run(main())


def test_an_llm_answer_is_said_sentence_by_sentence_with_persona_and_passages(avatar, llm_server, settings):
    llm_server.script("Paris is the capital of France. It lies on the Seine. Lovely city!", token_delay=0.01)
    session = _converse(avatar, "What is the capital of France?")
    assert session.said[:3] == ["Paris is the capital of France.", "It lies on the Seine.", "Lovely city!"]
    (request,) = llm_server.chat_requests
    system = request.messages[0]["content"]
    assert "A cheerful geography tutor." in system and "The capital of France is Paris." in system
    assert request.messages[-1] == {"role": "user", "content": "What is the capital of France?"}
    texts = [e["text"] for e in session.events if e["type"] == "answer_text"]
    assert texts[-1] == "Paris is the capital of France. It lies on the Seine. Lovely city!"


def test_an_llm_server_that_is_down_gets_a_spoken_fallback_and_an_error(avatar, settings):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.LLM_BASE_URL, settings.LLM_MODEL = f"http://127.0.0.1:{port}/v1", "any"
    settings.CONVERSATION_FALLBACK_ANSWER = FALLBACK
    session = _converse(avatar, "What is the capital of France?")
    assert session.said == [FALLBACK]
    (error,) = [e for e in session.events if e["type"] == "error"]
    assert error["reason"] == "responder" and str(port) not in error["detail"]


def test_a_slow_llm_server_gets_the_fallback_within_its_timeout(avatar, llm_server, settings):
    settings.LLM_TIMEOUT = 1.0
    settings.CONVERSATION_FALLBACK_ANSWER = FALLBACK
    llm_server.script("Too late.", first_token_delay=30)
    started = time.monotonic()
    session = _converse(avatar, "What is the capital of France?", wait=10)
    assert session.said == [FALLBACK]
    assert any(e["type"] == "error" and e["reason"] == "responder" for e in session.events)
    assert time.monotonic() - started < 10  # never a silent hang


def test_a_new_question_ends_the_answer_in_progress(avatar, llm_server):
    # The first answer is held after its first sentence; the second question stops it.
    llm_server.script("Paris is the capital. " + "More and more words. " * 20, hold_after=8)
    session = _converse(avatar, "What is the capital of France?", "Thanks, and the river?", between=1.5, wait=1)
    llm_server.resume()
    assert session.interrupts >= 1
    assert len(llm_server.chat_requests) == 2
    # The second request remembers the first question and what was said of its answer.
    history = llm_server.chat_requests[1].messages
    assert {"role": "user", "content": "What is the capital of France?"} in history
    assert history[-1] == {"role": "user", "content": "Thanks, and the river?"}
