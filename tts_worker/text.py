"""Text normalisation and sentence splitting for every engine (English and Chinese).

Synthesis runs sentence by sentence so that the first audio is ready long before the
last; the splitter therefore also cuts over-long sentences at a comma or a space.
"""

from __future__ import annotations

import re
import unicodedata

# A sentence ends at one of these (Chinese/Japanese full-width forms included).
_CJK_ENDS = "。！？；…"
_ASCII_ENDS = ".!?;"
_CLOSERS = "\"'”’)]}）】」』》"
# Cut points for sentences that are too long, best first.
_SOFT_BREAKS = ("，", "、", ",", "：", ":", "—", " ")
# Abbreviations whose dot does not end a sentence.
_ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "sr",
    "jr",
    "st",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "no",
    "fig",
    "approx",
    "dept",
    "inc",
    "ltd",
    "co",
    "mt",
    "u.s",
}
MAX_SENTENCE_CHARS = 220
# The first chunk is what a listener waits for: a first sentence longer than this is cut
# after its first clause (at a comma or the like) that is long enough to say on its own.
FIRST_CHUNK_CHARS = 20
_MIN_CLAUSE_CHARS = 8
_CLAUSE_END = re.compile(r"[,;:，、；：](?=\s|$)|[，、；：]")

_SPACES = re.compile(r"\s+")
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "‐": "-", "‑": "-"})
# Sentence end: ASCII punctuation followed by space/end, or CJK punctuation anywhere;
# closing quotes and brackets stay with the sentence they close.
_END = re.compile(
    rf"([{re.escape(_ASCII_ENDS)}]+[{re.escape(_CLOSERS)}]*(?=\s|$)"
    rf"|[{re.escape(_CJK_ENDS)}]+[{re.escape(_CLOSERS)}]*)"
)


def normalize(text: str) -> str:
    """Canonical Unicode, no control characters, single spaces; paragraph breaks kept."""
    text = unicodedata.normalize("NFC", text or "").translate(_QUOTES)
    text = "".join(ch if ch in "\n\t" or not unicodedata.category(ch).startswith("C") else " " for ch in text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


def _is_abbreviation(before: str) -> bool:
    word = before.rsplit(" ", 1)[-1].rstrip(".").lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _split_long(sentence: str, limit: int) -> list[str]:
    parts: list[str] = []
    while len(sentence) > limit:
        cut = -1
        for mark in _SOFT_BREAKS:
            cut = sentence.rfind(mark, limit // 3, limit)
            if cut > 0:
                break
        cut = cut + 1 if cut > 0 else limit
        parts.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    if sentence:
        parts.append(sentence)
    return parts


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Sentences of (normalised) text, each at most `max_chars` long, none empty."""
    sentences: list[str] = []
    for paragraph in text.split("\n"):
        start = 0
        for match in _END.finditer(paragraph):
            end = match.end()
            if match.group(0) == "." and _is_abbreviation(paragraph[start : match.start()]):
                continue
            sentences.append(paragraph[start:end])
            start = end
        sentences.append(paragraph[start:])
    out: list[str] = []
    for sentence in sentences:
        sentence = sentence.strip()
        # Punctuation alone ("...", "?!") is no sentence to speak.
        if sentence and any(ch.isalnum() for ch in sentence):
            out.extend(_split_long(sentence, max_chars))
    return out


def _spoken_length(text: str) -> int:
    """Length in Latin-letter equivalents: a Chinese character takes as long to say as ~3."""
    return sum(3 if "\u3400" <= ch <= "\u9fff" else 1 for ch in text)


def split_for_streaming(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Sentences to synthesise one by one, the first one cut after its first clause when it
    is long, so that the first audio is ready sooner."""
    sentences = split_sentences(text, max_chars)
    if sentences and _spoken_length(sentences[0]) > FIRST_CHUNK_CHARS:
        first = sentences[0]
        for match in _CLAUSE_END.finditer(first):
            head, tail = first[: match.end()].strip(), first[match.end() :].strip()
            if _spoken_length(head) >= _MIN_CLAUSE_CHARS and sum(ch.isalnum() for ch in tail) >= 3:
                return [head, tail] + sentences[1:]
    return sentences
