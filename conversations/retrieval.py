"""Search over an avatar's knowledge passages, built for spoken questions.

Questions come from an offline speech recogniser, which mishears words ("how many licks
does the spider have" for "legs", "plance" for "plants"). A passage is found by the words
it shares with the question:

- Terms: Unicode words, lowercased, English stopwords and filler ("tell me about") left
  out, a light suffix stemmer ("spiders", "spider's" -> "spider"; "growing" -> "grow").
- BM25 (k1=1.2, b=0.75) over those terms ranks the passages.
- A question term the knowledge base does not contain is matched to the knowledge base's
  terms that look like it (character trigrams, Dice similarity >= FUZZY_MIN_SIMILARITY),
  weighted by that similarity: near-misses of the recogniser still find their passage.

`Passage.score` (0..1) is mostly how much of the question the passage covers: the share of
the question's terms it contains, each weighted by its rarity (idf; a term found nowhere
counts as a rare one, so an unrelated question scores low), blended with the passage's
BM25 relative to a passage with each term once. Passages under `MIN_SCORE` are not
returned: an empty list means the knowledge base has nothing on the question.

Indexes are kept per process for the most recently searched avatars, keyed on a signature
of the avatar's documents, so a search after a document is added or removed rebuilds it.
"""

from __future__ import annotations

import heapq
import math
import re
import threading
import unicodedata
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from contracts.conversation import Passage

# A passage must score this much to be returned (see the module's docstring).
MIN_SCORE = 0.4
FUZZY_MIN_SIMILARITY = 0.5
FUZZY_MAX_EXPANSIONS = 3
BM25_K1 = 1.2
BM25_B = 0.75
# Share of the score from coverage; the rest from BM25 (term frequency, passage length).
COVERAGE_SHARE = 0.75
# How much a question term that matches nothing in the knowledge base weighs, relative to
# a term found in one passage (an unrelated question's words are mostly such terms).
UNKNOWN_TERM_WEIGHT = 1.0
# A question word that sounds like a knowledge-base word (same phonetic key, below) counts
# this much: recognisers swap words that sound alike ("licks" for "legs", "son" for "sun").
PHONETIC_SIMILARITY = 0.6
CACHED_AVATARS = 64

# English function words, plus the filler of spoken questions ("can you tell me about").
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing done down during each either else ever every
    few for from further get gets getting got had has have having he her here hers herself him himself
    his how i if in into is it its itself just me might more most much must my myself no nor not now
    of off on once one only or other ought our ours ourselves out over own per same shall she should so
    some such than that the their theirs them themselves then there these they this those through to
    too two under until up upon us very was we were what whatever when where whether which while who
    whom whose why will with would yet you your yours yourself yourselves
    s t d ll m re ve don doesn didn isn aren wasn weren won wouldn couldn shouldn cannot
    tell explain describe know please want like talk mean say ask let think thing things something
    anything kind sort lot lots really many okay ok hey hi hello um uh erm er ah oh yeah yes well
    make makes made making happen happens happened
    """.split()
)

_WORD = re.compile(r"\w+")


def stem(word: str) -> str:
    """A light English suffix stemmer: plurals, -ing, -ed, -ly, a final e. Only consistency
    matters (the same stem for the forms a student and a text would use)."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ingly", "edly", "ing", "ed", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]  # running -> runn -> run
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def words(text: str) -> list[str]:
    """The text's words, normalised (NFKC, casefolded), without the stopwords."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("_", " ").replace("'", " ").replace("’", " ")
    return [word for word in _WORD.findall(text) if word not in STOPWORDS]


def terms(text: str) -> list[str]:
    """The search terms of a text, in order (repeats kept)."""
    return [stem(word) for word in words(text)]


# Soundex's consonant classes; vowels, h, w, y carry no sound class.
_SOUND_CLASSES = {
    **dict.fromkeys("bfpv", "1"),
    **dict.fromkeys("cgjkqsxz", "2"),
    **dict.fromkeys("dt", "3"),
    "l": "4",
    **dict.fromkeys("mn", "5"),
    "r": "6",
}


def phonetic_key(term: str) -> str:
    """A Soundex-like key over the whole term (not cut to 4 characters): the first letter,
    then the classes of the consonants, repeats merged. "leg"/"lick" -> "l2"."""
    if len(term) < 3 or not term.isalpha() or not term.isascii():
        return ""
    key, previous = term[0], _SOUND_CLASSES.get(term[0], "")
    for letter in term[1:]:
        sound = _SOUND_CLASSES.get(letter, "")
        if sound and sound != previous:
            key += sound
        if letter not in "hw":
            previous = sound
    return key


def trigrams(term: str) -> set[str]:
    padded = f" {term} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


@dataclass(frozen=True)
class IndexedPassage:
    document_id: int
    title: str
    text: str


class KnowledgeIndex:
    """BM25 over the passages' terms, and a trigram index of the vocabulary."""

    def __init__(self, passages: list[IndexedPassage]):
        self.passages = passages
        self.postings: dict[str, list[tuple[int, int]]] = {}
        self.lengths: list[int] = []
        for number, passage in enumerate(passages):
            counts = Counter(terms(f"{passage.text}"))
            self.lengths.append(sum(counts.values()))
            for term, count in counts.items():
                self.postings.setdefault(term, []).append((number, count))
        total = len(passages)
        self.average_length = (sum(self.lengths) / total) if total else 1.0
        self.idf = {term: self._idf(len(posting)) for term, posting in self.postings.items()}
        self.unknown_weight = UNKNOWN_TERM_WEIGHT * self._idf(1)
        self._gram_terms: dict[str, list[str]] = {}
        self._gram_counts: dict[str, int] = {}
        for term in self.postings:
            grams = trigrams(term)
            self._gram_counts[term] = len(grams)
            for gram in grams:
                self._gram_terms.setdefault(gram, []).append(term)
        self._sounds: dict[str, list[str]] = {}
        for term in self.postings:
            key = phonetic_key(term)
            if key:
                self._sounds.setdefault(key, []).append(term)
        self._similar_cache: dict[str, list[tuple[str, float]]] = {}
        self._lock = threading.Lock()

    def _idf(self, document_frequency: int) -> float:
        total = len(self.passages)
        return math.log(1 + (total - document_frequency + 0.5) / (document_frequency + 0.5))

    def similar_terms(self, term: str) -> list[tuple[str, float]]:
        """(vocabulary term, similarity) for a term: itself when known, else the terms that
        look like it, best first."""
        if term in self.postings:
            return [(term, 1.0)]
        cached = self._similar_cache.get(term)
        if cached is not None:
            return cached
        found: list[tuple[str, float]] = []
        if len(term) >= 4 and not term.isdigit():
            grams = trigrams(term)
            shared: Counter[str] = Counter()
            for gram in grams:
                shared.update(self._gram_terms.get(gram, ()))
            for candidate, count in shared.items():
                similarity = 2 * count / (len(grams) + self._gram_counts[candidate])
                if similarity >= FUZZY_MIN_SIMILARITY:
                    found.append((candidate, similarity))
        spelled = {candidate for candidate, _similarity in found}
        found.extend(
            (candidate, PHONETIC_SIMILARITY)
            for candidate in self._sounds.get(phonetic_key(term), ())
            if candidate not in spelled
        )
        found = heapq.nlargest(FUZZY_MAX_EXPANSIONS, found, key=lambda pair: (pair[1], pair[0]))
        with self._lock:
            if len(self._similar_cache) > 10_000:
                self._similar_cache.clear()
            self._similar_cache[term] = found
        return found

    def _question_terms(self, query: str) -> list[str]:
        """The query's terms, with two words the recogniser split ("photo synthesis") joined
        when the knowledge base has them as one."""
        heard = words(query)
        if not heard:
            return []
        found, skip = [], False
        for first, second in zip(heard, [*heard[1:], ""], strict=True):
            if skip:
                skip = False
                continue
            joined = stem(first + second) if second else ""
            if joined and first not in self.postings and joined in self.postings:
                found.append(joined)
                skip = True
            else:
                found.append(stem(first))
        return found

    def search(self, query: str, limit: int, min_score: float = MIN_SCORE) -> list[Passage]:
        if not self.passages or limit <= 0:
            return []
        question = list(dict.fromkeys(self._question_terms(query)))
        if not question:
            return []
        coverage: dict[int, float] = {}
        bm25: dict[int, float] = {}
        total_weight = 0.0
        for term in question:
            matches = self.similar_terms(term)
            weight = max((self.idf[t] for t, _sim in matches), default=self.unknown_weight)
            total_weight += weight
            # Per passage, the best of this term's matches (a term counts once).
            best: dict[int, tuple[float, float]] = {}
            for matched, similarity in matches:
                idf = self.idf[matched]
                for number, count in self.postings[matched]:
                    norm = BM25_K1 * (1 - BM25_B + BM25_B * self.lengths[number] / self.average_length)
                    gain = similarity * idf * count * (BM25_K1 + 1) / (count + norm)
                    if number not in best or gain > best[number][1]:
                        best[number] = (similarity * weight, gain)
            for number, (covered, gain) in best.items():
                coverage[number] = coverage.get(number, 0.0) + covered
                bm25[number] = bm25.get(number, 0.0) + gain
        scored = []
        for number, covered in coverage.items():
            relative_bm25 = min(1.0, bm25[number] / total_weight)
            score = COVERAGE_SHARE * covered / total_weight + (1 - COVERAGE_SHARE) * relative_bm25
            if score >= min_score:
                scored.append((score, -number))  # ties: the earlier passage first
        passages = []
        for score, negative in heapq.nlargest(limit, scored):
            passage = self.passages[-negative]
            passages.append(Passage(passage.document_id, passage.title, passage.text, round(score, 4)))
        return passages


class IndexCache:
    """Indexes of the most recently searched avatars, each valid for one signature."""

    def __init__(self, size: int = CACHED_AVATARS):
        self.size = size
        self._entries: OrderedDict[int, tuple[Hashable, KnowledgeIndex]] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[int, threading.Lock] = {}

    def get(self, avatar_id: int, signature: Hashable, load: Callable[[], list[IndexedPassage]]) -> KnowledgeIndex:
        with self._lock:
            entry = self._entries.get(avatar_id)
            if entry is not None and entry[0] == signature:
                self._entries.move_to_end(avatar_id)
                return entry[1]
            building = self._building.setdefault(avatar_id, threading.Lock())
        # One build per avatar at a time (sessions asking together wait for it); other
        # avatars' searches go on meanwhile.
        with building:
            with self._lock:
                entry = self._entries.get(avatar_id)
                if entry is not None and entry[0] == signature:
                    return entry[1]
            index = KnowledgeIndex(load())
        with self._lock:
            self._entries[avatar_id] = (signature, index)
            self._entries.move_to_end(avatar_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return index

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


index_cache = IndexCache()
