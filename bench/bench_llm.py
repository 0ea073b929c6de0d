"""Responder benchmark: what the responders add to the time before the avatar starts talking.

    python bench/bench_llm.py [--runs N] [--first-token-ms MS]

openai, against the stand-in OpenAI-compatible server (tests/conversation/llm_standin.py;
real HTTP on 127.0.0.1), each run timed from the request to the first sentence out of
`sentence_stream`:
  - one chunk: the stand-in waits --first-token-ms (300 ms), then sends the whole answer;
    overhead = that time minus the stand-in's own time to first token (request received ->
    first chunk sent): connection, request, reading the stream, splitting the sentence.
  - streamed: one token per chunk, 20 ms apart; overhead = the time from the stand-in sending
    the token that completed the first sentence to that sentence coming out.
knowledge: time per answer (3 passages of ~900 characters; every sentence through
`sentence_stream`).
Goals: openai overhead <= 50 ms (median), knowledge <= 5 ms per answer (median).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutor_site.worker_settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from contracts.conversation import ChatTurn, Passage, ResponderRequest  # noqa: E402
from lipsync_worker.conversation.responders import responder_get  # noqa: E402
from lipsync_worker.conversation.sentences import sentence_stream  # noqa: E402
from tests.conversation.llm_standin import STANDIN_MODEL, LLMStandInServer  # noqa: E402

GOAL_OVERHEAD_MS = 50.0
GOAL_KNOWLEDGE_MS = 5.0
ANSWER = (
    "A fraction describes a part of a whole, like one half of a pizza. The number on top counts the parts "
    "you have. The number below says how many equal parts make the whole."
)
PASSAGE = (
    "Fractions are numbers that describe parts of a whole. "
    "A fraction has a numerator, written on top, and a denominator, written below the line. "
    "The denominator says into how many equal parts the whole is divided, "
    "and the numerator says how many of those parts are taken. "
    "For example, three quarters means that the whole is cut into four equal parts and three are taken. "
    "Fractions with the same denominator are added by adding their numerators. "
    "To add fractions with different denominators, first rewrite them with a common denominator. "
    "A fraction whose numerator is larger than its denominator is called an improper fraction. "
    "Every fraction can also be written as a decimal number, such as 0.75 for three quarters. "
    "Equivalent fractions, such as one half and two quarters, name the same amount."
)
REQUEST = ResponderRequest(
    question="How do I add fractions with different denominators?",
    persona="You are patient and cheerful; you teach maths to 12-year-olds.",
    avatar_name="Ms Count",
    history=(ChatTurn("student", "What is a fraction?"), ChatTurn("avatar", "A part of a whole.")),
    passages=tuple(Passage(i, f"Fractions {i}", PASSAGE, 0.9 - i / 10) for i in range(3)),
    fallback="I'm sorry, I don't know that yet.",
    max_sentences=3,
)


def first_sentence_at(responder) -> float:
    sentences = sentence_stream(responder.respond(REQUEST))
    next(sentences)
    at = time.perf_counter()
    for _ in sentences:  # the rest, so that the connection is left clean for the next run
        pass
    return at


def bench_openai(runs: int, first_token_s: float) -> tuple[list[float], list[float], list[float]]:
    responder = responder_get("openai")
    one_chunk, streamed, ttft = [], [], []
    with LLMStandInServer() as server:
        settings.LLM_BASE_URL, settings.LLM_MODEL, settings.LLM_API_KEY = server.url + "/v1", STANDIN_MODEL, ""
        server.script(answer=ANSWER, chunk_tokens=1000, first_token_delay=first_token_s)
        first_sentence_at(responder)  # warm-up: imports, the first connection
        for _ in range(runs):
            start = time.perf_counter()
            at = first_sentence_at(responder)
            sent = server.chat_requests[-1]
            server_ttft = sent.first_token_at - sent.received_at
            ttft.append(1000 * server_ttft)
            one_chunk.append(1000 * ((at - start) - server_ttft))
        server.script(answer=ANSWER, chunk_tokens=1, first_token_delay=first_token_s, token_delay=0.02)
        for _ in range(runs):
            at = first_sentence_at(responder)
            completing = max(t for t, _ in server.chat_requests[-1].chunks if t <= at)
            streamed.append(1000 * (at - completing))
    return one_chunk, streamed, ttft


def bench_knowledge(runs: int) -> list[float]:
    responder = responder_get("knowledge")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sentences = list(sentence_stream(responder.respond(REQUEST)))
        times.append(1000 * (time.perf_counter() - start))
    assert sentences, "the knowledge responder said nothing"
    return times


def line(name: str, values: list[float], goal: float | None) -> tuple[str, bool]:
    median = statistics.median(values)
    ok = goal is None or median <= goal
    verdict = "" if goal is None else f"{median / goal:5.2f} x goal ({goal:g} ms) {'met' if ok else 'MISSED'}"
    return f"{name:<36} {median:>9.2f} {max(values):>9.2f}  {verdict}", ok


def main() -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no line per request
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--first-token-ms", type=float, default=300.0)
    args = parser.parse_args()

    print(
        f"Responder benchmark: {args.runs} runs, stand-in first token after {args.first_token_ms:g} ms, "
        f"{os.cpu_count()} CPU cores"
    )
    one_chunk, streamed, ttft = bench_openai(args.runs, args.first_token_ms / 1000)
    knowledge = bench_knowledge(max(50, args.runs * 10))
    print(f"{'':<36} {'median ms':>9} {'max ms':>9}")
    rows = [
        line("stand-in time to first token", ttft, None),
        line("openai overhead (one chunk)", one_chunk, GOAL_OVERHEAD_MS),
        line("openai overhead (streamed tokens)", streamed, GOAL_OVERHEAD_MS),
        line("knowledge answer", knowledge, GOAL_KNOWLEDGE_MS),
    ]
    for text, _ in rows:
        print(text)
    return 0 if all(ok for _, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
