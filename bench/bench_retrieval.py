"""Knowledge retrieval benchmark: how long `conversations.selectors.knowledge_search` takes
for an avatar with 1,000 passages, the call the live worker makes for every question.

    python bench/bench_retrieval.py [--chunks 1000] [--queries 300]

Runs against a private in-memory SQLite database (migrated here, nothing else touched).
Prints the first search (which builds the avatar's index), then the median, p95 and max of
the searches that follow (the database's signature query included), and of the index alone.
Goal: a search under 20 ms for 1,000 passages.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["DATABASE_URL"] = "sqlite://:memory:"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutor_site.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402

from tests.conversations import corpus  # noqa: E402

GOAL_MS = 20.0
SYLLABLES = "ba be bi bo bu ca co cu da de di do fa fe fi ga go la le li lo lu ma me mi mo na ne ni no pa pe".split()
SYLLABLES += "po ra re ri ro sa se si so ta te ti to va ve vi za zo tra pro str gen ment tion ver cal lin".split()


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    words = {"".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(size * 2)}
    return sorted(words)[:size]


def _sentence(rng: random.Random, vocabulary: list[str]) -> str:
    common = ["the", "of", "and", "is", "a", "in", "to", "it", "that", "with"]
    words = [rng.choice(vocabulary) if rng.random() < 0.6 else rng.choice(common) for _ in range(rng.randint(8, 16))]
    return " ".join(words).capitalize() + "."


def build(chunks: int) -> int:
    from avatars.models import Avatar
    from conversations import services
    from conversations.models import KnowledgeChunk
    from tutors.services import admin_create, tutor_create

    admin, _ = admin_create(email="bench@bench.test", password="bench-password-1")
    avatar = Avatar.objects.create(tutor=tutor_create(owner=admin, name="Bench"), name="bench", status="inactive")
    for title, text in corpus.DOCUMENTS.items():
        services.knowledge_document_add(avatar, title=title, text=text)
    rng = random.Random(7)
    vocabulary = _vocabulary(rng, 6000)
    per_document = 50
    number = 0
    while KnowledgeChunk.objects.filter(avatar=avatar).count() < chunks:
        paragraphs = ["\n\n".join(" ".join(_sentence(rng, vocabulary) for _ in range(4)) for _ in range(per_document))]
        services.knowledge_document_add(avatar, title=f"Generated {number}", text=paragraphs[0])
        number += 1
    return avatar.pk


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    from conversations.models import KnowledgeChunk
    from conversations.retrieval import index_cache
    from conversations.selectors import knowledge_search

    avatar_id = build(args.chunks)
    total = KnowledgeChunk.objects.filter(avatar_id=avatar_id).count()
    rng = random.Random(11)
    questions = [q for q, _title, _phrase in corpus.ASR_QUESTIONS] + corpus.UNRELATED_QUESTIONS
    queries = [rng.choice(questions) for _ in range(args.queries)]

    start = time.perf_counter()
    knowledge_search(avatar_id, queries[0])
    first_ms = 1000 * (time.perf_counter() - start)
    timings = []
    for query in queries:
        start = time.perf_counter()
        knowledge_search(avatar_id, query)
        timings.append(1000 * (time.perf_counter() - start))
    index = next(iter(index_cache._entries.values()))[1]
    index_only = []
    for query in queries:
        start = time.perf_counter()
        index.search(query, 3)
        index_only.append(1000 * (time.perf_counter() - start))
    found = sum(bool(knowledge_search(avatar_id, q)) for q, _t, _p in corpus.ASR_QUESTIONS)

    def line(name, values):
        values = sorted(values)
        p95 = values[int(0.95 * (len(values) - 1))]
        median = statistics.median(values)
        print(
            f"{name:<28} median {median:6.2f} ms  p95 {p95:6.2f} ms  max {values[-1]:6.2f} ms"
            f"  ratio to goal {median / GOAL_MS:.3f} ({'met' if p95 <= GOAL_MS else 'MISSED'}: <= {GOAL_MS:g} ms)"
        )

    print(f"knowledge_search over {total} passages, {len(queries)} spoken questions")
    print(f"{'first search (builds index)':<28} {first_ms:6.1f} ms")
    line("search (with DB signature)", timings)
    line("index alone", index_only)
    print(f"ASR-style questions answered: {found}/{len(corpus.ASR_QUESTIONS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
