"""The responders: the offline knowledge answer, and the OpenAI-compatible LLM client against
the stand-in server (`llm_standin.py`, fixture `llm_server`)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from contracts.conversation import ChatTurn, Passage, ResponderRequest
from contracts.engines import responder_names
from contracts.errors import InvalidInput, ServiceUnavailable
from lipsync_worker.conversation.responders import responder_get, responder_list
from lipsync_worker.conversation.responders.openai import availability_forget
from lipsync_worker.conversation.sentences import sentence_stream

FALLBACK = "I'm sorry, I don't know that yet."
PHOTOSYNTHESIS = (
    "Plants are living things.\n"
    "Photosynthesis is how green plants turn light,\nwater and carbon dioxide into sugar. "
    "It happens in the leaves. The sugar feeds the plant. Oxygen is released as a by-product. "
    "Animals breathe that oxygen."
)


def passage(text: str, score: float = 0.9, title: str = "Biology") -> Passage:
    return Passage(document_id=1, title=title, text=text, score=score)


def request(question: str = "What is photosynthesis?", **kwargs) -> ResponderRequest:
    kwargs.setdefault("fallback", FALLBACK)
    return ResponderRequest(question=question, **kwargs)


def answer(responder, req: ResponderRequest, cancel=None) -> str:
    return "".join(responder.respond(req, cancel))


# --- registry -----------------------------------------------------------------------------


def test_every_responder_of_the_catalogue_has_an_implementation():
    assert [row["id"] for row in responder_list()] == responder_names()
    for row in responder_list():
        assert set(row) == {"id", "display_name", "licence", "model", "available", "reason"}
    assert responder_get("knowledge").name == "knowledge"
    with pytest.raises(InvalidInput) as info:
        responder_get("gpt-17")
    assert info.value.extra["valid_llm_models"] == responder_names()


# --- knowledge ----------------------------------------------------------------------------


def test_knowledge_says_the_best_passage_from_the_sentence_about_the_question():
    knowledge = responder_get("knowledge")
    req = request(
        max_sentences=3,
        passages=(passage(PHOTOSYNTHESIS), passage("Photosynthesis is a word in another text.", 0.5)),
    )
    assert knowledge.availability() == (True, "")
    # Starts at the sentence sharing most words with the question (hard wraps joined), then
    # goes on with the following ones, three in all.
    assert answer(knowledge, req) == (
        "Photosynthesis is how green plants turn light, water and carbon dioxide into sugar. "
        "It happens in the leaves. The sugar feeds the plant."
    )
    where = request("Where does the plant get the oxygen released?", max_sentences=2, passages=req.passages)
    assert answer(knowledge, where) == "Oxygen is released as a by-product. Animals breathe that oxygen."
    # Nothing in common with the question: the passage from its start.
    other = request("Tell me more", max_sentences=1, passages=req.passages)
    assert answer(knowledge, other) == "Plants are living things."


def test_knowledge_says_the_fallback_without_passages():
    knowledge = responder_get("knowledge")
    assert answer(knowledge, request()) == FALLBACK
    assert answer(knowledge, request(passages=(passage("🙂 ---"),))) == FALLBACK
    # A passage with nothing to say is passed over for the next one.
    two = (passage("🙂 ---"), passage("Photosynthesis feeds plants.", 0.4))
    assert answer(knowledge, request(passages=two)) == "Photosynthesis feeds plants."


def test_knowledge_answers_are_speakable():
    text = (
        "# Fractions\n"
        "- A **fraction** is part of a whole, see https://example.com/fractions.\n"
        "- The [denominator](https://example.com/d) says into how many parts:\n"
        "- 1/4 is one part of four"
    )
    knowledge = responder_get("knowledge")
    req = request("What is a fraction?", max_sentences=3, passages=(passage(text),))
    spoken = answer(knowledge, req)
    assert spoken == (
        "A fraction is part of a whole, see. The denominator says into how many parts. 1/4 is one part of four."
    )
    # The session cuts it exactly where the knowledge responder meant its sentences to end.
    assert list(sentence_stream(knowledge.respond(req))) == [
        "A fraction is part of a whole, see.",
        "The denominator says into how many parts.",
        "1/4 is one part of four.",
    ]


def test_knowledge_answers_chinese_questions():
    text = "水是生命之源。光合作用是植物利用阳光制造养分的过程。它发生在叶子里。"
    req = request("什么是光合作用？", max_sentences=2, passages=(passage(text),))
    assert answer(responder_get("knowledge"), req) == "光合作用是植物利用阳光制造养分的过程。 它发生在叶子里。"


# --- openai: what is sent ------------------------------------------------------------------


def test_openai_sends_the_persona_memory_passages_model_and_key(llm_server, settings):
    settings.LLM_API_KEY = "sk-standin-secret"
    settings.LLM_MAX_TOKENS = 123
    settings.LLM_TEMPERATURE = 0.1
    llm_server.script(answer="Plants make sugar from light.", api_key="sk-standin-secret")
    req = request(
        "And where does it happen?",
        persona="You are patient and cheerful; you teach biology to 12-year-olds.",
        avatar_name="Ms Leaf",
        language="fr",
        history=(
            ChatTurn("student", "What is photosynthesis?"),
            ChatTurn("avatar", "It is how plants make food."),
        ),
        passages=(passage("Photosynthesis happens in the chloroplasts of leaves.", title="Leaves"),),
    )
    assert answer(responder_get("openai"), req) == "Plants make sugar from light."

    sent = llm_server.chat_requests[-1]
    assert sent.headers["authorization"] == "Bearer sk-standin-secret"
    body = sent.json
    assert body["model"] == "standin-model"
    assert body["stream"] is True
    assert body["max_tokens"] == 123 and body["temperature"] == 0.1
    system, *memory, question = body["messages"]
    assert system["role"] == "system"
    for expected in ("Ms Leaf", "patient and cheerful", "French", "no markdown", "chloroplasts", "Leaves"):
        assert expected in system["content"]
    assert memory == [
        {"role": "user", "content": "What is photosynthesis?"},
        {"role": "assistant", "content": "It is how plants make food."},
    ]
    assert question == {"role": "user", "content": "And where does it happen?"}


def test_openai_sends_no_key_when_none_is_set(llm_server):
    answer(responder_get("openai"), request())
    assert "authorization" not in llm_server.chat_requests[-1].headers


# --- openai: streaming ---------------------------------------------------------------------


def test_openai_streams_the_first_piece_before_the_server_has_finished(llm_server):
    llm_server.script(answer="Plants make food. They use light. And water.", hold_after=1)
    pieces = responder_get("openai").respond(request())
    first = next(pieces)
    # The server is holding after its first token: the piece came out while it was still answering.
    assert llm_server.holding.is_set()
    assert llm_server.chat_requests[-1].finished_at is None
    assert first == "Plants"
    llm_server.resume()
    assert first + "".join(pieces) == "Plants make food. They use light. And water."
    assert llm_server.chat_requests[-1].finished_at is not None


def test_openai_answer_splits_into_sentences_as_it_streams(llm_server):
    llm_server.script(answer="Plants make food. They use light and water.", hold_after=5)
    sentences = sentence_stream(responder_get("openai").respond(request()))
    # Five tokens: "Plants", " make", " food", ".", " They": the first sentence is known.
    assert next(sentences) == "Plants make food."
    assert llm_server.chat_requests[-1].finished_at is None
    llm_server.resume()
    assert list(sentences) == ["They use light and water."]


def test_openai_answers_reuse_the_connection(llm_server):
    """A hosted API's TLS handshake is paid once, not per answer."""
    openai = responder_get("openai")
    assert answer(openai, request()) == answer(openai, request())
    first, second = llm_server.chat_requests
    assert first.client_port == second.client_port


def test_openai_drops_the_reasoning_of_thinking_models(llm_server):
    llm_server.script(answer="<think>\nThe student wants a short answer.\n</think>\n\nPlants make food.")
    assert answer(responder_get("openai"), request()) == "Plants make food."
    llm_server.script(answer="<think>Short.</think>Plants make food.", chunk_tokens=20)  # all in one piece
    assert answer(responder_get("openai"), request()) == "Plants make food."


def test_openai_says_the_fallback_when_the_model_says_nothing(llm_server):
    llm_server.script(answer="")
    assert answer(responder_get("openai"), request()) == FALLBACK
    llm_server.script(answer="<think>Hmm.</think>")
    assert answer(responder_get("openai"), request()) == FALLBACK


def test_cancel_stops_the_answer_and_closes_the_connection(llm_server):
    llm_server.script(answer="One two three four five six seven eight.", hold_after=2)
    cancel = threading.Event()
    pieces = responder_get("openai").respond(request(), cancel)
    assert next(pieces) == "One"
    cancel.set()
    assert list(pieces) == []  # stops, without an error
    sent = llm_server.chat_requests[-1]
    assert sent.client_gone.wait(5), "the stand-in never saw the connection close"
    assert sent.finished_at is None and len(sent.chunks) == 2


def test_cancel_before_the_start_sends_nothing(llm_server):
    cancel = threading.Event()
    cancel.set()
    assert answer(responder_get("openai"), request(), cancel) == ""
    assert llm_server.chat_requests == []


# --- openai: failures ----------------------------------------------------------------------


def failure(req: ResponderRequest | None = None) -> tuple[ServiceUnavailable, list[str]]:
    """The ServiceUnavailable an answer ends with, and the pieces that came before it."""
    got: list[str] = []
    with pytest.raises(ServiceUnavailable) as info:
        for piece in responder_get("openai").respond(req or request()):
            got.append(piece)
    return info.value, got


def assert_discreet(exc: ServiceUnavailable, server) -> None:
    """Errors reach the page: never the server's address or key."""
    for secret in (server.url, "127.0.0.1", str(server.httpd.server_address[1]), "sk-standin-secret"):
        assert secret not in exc.detail


def test_openai_server_down(llm_server, settings):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.LLM_BASE_URL = f"http://127.0.0.1:{port}/v1"
    exc, _ = failure()
    assert "does not answer" in exc.detail and str(port) not in exc.detail
    assert "127.0.0.1" not in exc.detail


def test_openai_server_error(llm_server):
    llm_server.script(fail="500")
    exc, got = failure()
    assert "HTTP 500" in exc.detail and got == []
    assert_discreet(exc, llm_server)


def test_openai_refused_key(llm_server, settings):
    settings.LLM_API_KEY = "sk-standin-secret"
    llm_server.script(api_key="another-key")
    exc, _ = failure()
    assert "LLM_API_KEY" in exc.detail
    assert_discreet(exc, llm_server)


def test_openai_slow_first_token_gives_up_after_llm_timeout(llm_server, settings):
    settings.LLM_TIMEOUT = 0.3
    llm_server.script(first_token_delay=60)
    started = time.monotonic()
    exc, got = failure()
    assert "LLM_TIMEOUT" in exc.detail and got == []
    # Given up after LLM_TIMEOUT, not when the server would have answered (60 s).
    assert time.monotonic() - started < 10
    assert llm_server.chat_requests[-1].client_gone.wait(5)


def test_openai_server_that_stalls_mid_answer_is_given_up(llm_server, settings):
    settings.LLM_TIMEOUT = 0.3
    llm_server.script(answer="One two three.", hold_after=1)
    exc, got = failure()
    assert got == ["One"] and "stopped answering" in exc.detail and "LLM_TIMEOUT" in exc.detail


def test_openai_server_that_hangs_before_answering_is_given_up(llm_server, settings):
    settings.LLM_TIMEOUT = 0.3
    llm_server.script(fail="hang")
    exc, _ = failure()
    assert "LLM_TIMEOUT" in exc.detail
    assert llm_server.requests[-1].client_gone.wait(5), "the connection was left open"


def test_openai_connection_closed_mid_answer(llm_server):
    llm_server.script(answer="One two three four.", fail="close", fail_after=2)
    exc, got = failure()
    assert got == ["One", " two"]
    assert "closed the connection" in exc.detail
    assert_discreet(exc, llm_server)


def test_openai_malformed_stream(llm_server):
    llm_server.script(answer="One two three four.", fail="malformed", fail_after=1)
    exc, got = failure()
    assert got == ["One"]
    assert "not an OpenAI-compatible" in exc.detail


def test_openai_unconfigured_answers_raise_with_the_setting_to_fix(settings):
    settings.LLM_BASE_URL = ""
    exc, _ = failure()
    assert "LLM_BASE_URL" in exc.detail


# --- openai: availability ------------------------------------------------------------------


def test_openai_availability_names_the_setting_to_fix(settings):
    openai = responder_get("openai")
    settings.LLM_BASE_URL, settings.LLM_MODEL = "", "llama3.2"
    available, reason = openai.availability()
    assert not available and "LLM_BASE_URL" in reason
    settings.LLM_BASE_URL, settings.LLM_MODEL = "http://localhost:11434/v1", ""
    available, reason = openai.availability()
    assert not available and "LLM_MODEL" in reason


def test_openai_availability_asks_the_server_once_in_a_while(llm_server):
    openai = responder_get("openai")
    assert openai.availability() == (True, "")
    assert openai.availability() == (True, "")
    assert [r.path for r in llm_server.requests] == ["/v1/models"]  # cached
    row = next(r for r in responder_list() if r["id"] == "openai")
    assert row["model"] == "standin-model" and row["available"]


def test_openai_availability_when_the_server_does_not_answer(llm_server, settings):
    openai = responder_get("openai")
    llm_server.script(fail="500")
    available, reason = openai.availability()
    assert not available and "does not answer" in reason
    assert_discreet(ServiceUnavailable(reason), llm_server)

    availability_forget()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.LLM_BASE_URL = f"http://127.0.0.1:{port}/v1"
    available, reason = openai.availability()
    assert not available and "does not answer" in reason and str(port) not in reason


def test_openai_availability_spots_a_base_url_without_v1_and_a_refused_key(llm_server, settings):
    openai = responder_get("openai")
    settings.LLM_BASE_URL = llm_server.url  # the API lives under /v1
    available, reason = openai.availability()
    assert not available and "/v1" in reason
    availability_forget()
    settings.LLM_BASE_URL = llm_server.url + "/v1"
    llm_server.script(api_key="the-right-key")
    available, reason = openai.availability()
    assert not available and "LLM_API_KEY" in reason
