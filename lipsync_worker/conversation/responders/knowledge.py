"""The offline responder: answers with the avatar's own knowledge base, no model.

The session has already retrieved the passages that match the question, best first. This
responder says the best one, trimmed to `max_sentences` sentences: from the sentence that
shares the most words with the question, onwards, so that a long passage is entered where
it is about the question. With no passage it says the fallback.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterator

from contracts.conversation import ResponderRequest

from ..sentences import split_sentences
from .base import Responder

# Lines that stand on their own in a document (headings, list items, quotes, table rows);
# any other line break inside a paragraph is a hard wrap (PDFs, e-mails) and is joined.
_BLOCK_LINE = re.compile(r"^\s*(?:#{1,6}\s|[-*+•·▪●◦]\s|\d{1,3}[.)]\s|>|\|)")
_HEADING = re.compile(r"^\s*#{1,6}\s")
_CJK = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af"
# A run of CJK characters, or a word of other letters and digits.
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W{_CJK}_]+")
_STOPWORDS = frozenset(
    """a an and are as at be but by can could did do does for from had has have how i if in is it its
    me my of on or our so than that the their them then there these they this to was we were what
    when where which who whom why will with would you your about into also just not no yes please tell
    explain know""".split()
)
_FINAL_PUNCTUATION = tuple(".!?…。！？\"'”’)")


def _unwrap(text: str) -> str:
    """`text` with hard-wrapped lines joined, breaks between paragraphs and list items kept
    (each ends a sentence), markdown headings left out."""
    lines: list[str] = []
    joinable = False  # whether the previous line is a paragraph's (or list item's) text
    for line in text.splitlines():
        line = line.strip()
        if not line or _HEADING.match(line):
            joinable = False  # a heading is a title, not something to say
        elif joinable and not _BLOCK_LINE.match(line):
            lines[-1] += " " + line
        else:
            lines.append(line)
            joinable = True
    return "\n".join(lines)


def _terms(text: str) -> set[str]:
    """The words of `text` that say what it is about: lowercase, accents and plurals off,
    common words out; CJK text as character pairs (it has no spaces between words)."""
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(ch))
    terms: set[str] = set()
    for token in _TOKEN.findall(text):
        if "\u3040" <= token[0] <= "\ud7af":
            terms.update(token[i : i + 2] for i in range(max(1, len(token) - 1)))
        elif token not in _STOPWORDS and (len(token) > 1 or token.isdigit()):
            terms.add(token[:-1] if len(token) > 3 and token.endswith("s") and not token.endswith("ss") else token)
    return terms


def best_start(question: str, sentences: list[str]) -> int:
    """Index of the sentence that shares the most words with the question (the first such;
    0 when none shares any)."""
    wanted = _terms(question)
    best, best_overlap = 0, 0
    for i, sentence in enumerate(sentences):
        overlap = len(wanted & _terms(sentence))
        if overlap > best_overlap:
            best, best_overlap = i, overlap
    return best


class KnowledgeResponder(Responder):
    name = "knowledge"

    def availability(self) -> tuple[bool, str]:
        return True, ""

    def respond(self, request: ResponderRequest, cancel: threading.Event | None = None) -> Iterator[str]:
        # The best passage that has anything to say.
        sentences = next((s for p in request.passages if (s := split_sentences(_unwrap(p.text)))), [])
        if not sentences:
            if request.fallback and not (cancel and cancel.is_set()):
                yield request.fallback
            return
        start = best_start(request.question, sentences)
        chosen = sentences[start : start + max(1, request.max_sentences)]
        for i, sentence in enumerate(chosen):
            if cancel is not None and cancel.is_set():
                return
            # A heading or list item has no full stop: give it one, so it is said (and split) alone.
            if not sentence.endswith(_FINAL_PUNCTUATION):
                sentence = sentence.rstrip(",;:—-– ") + "."
            yield sentence if i == len(chosen) - 1 else sentence + " "
