"""From a responder's text pieces to sentences the avatar can say, as soon as each is complete.

A responder streams an answer token by token; the session speaks it sentence by sentence,
so the first sentence must come out the moment its end is seen, and a long first sentence
is cut after a clause so that the avatar starts talking sooner. Every sentence goes through
`speakable`, which removes what reads badly aloud (markdown, URLs, emoji).

The TTS worker splits text again for synthesis; this module is the lipsync worker's own
(the workers never import each other).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator

_CLOSERS = "\"'”’)]}）】」』》*_"  # stay with the sentence they close (markdown emphasis too)
_END = re.compile(rf"\n|[.!?…]+[{re.escape(_CLOSERS)}]*|[。！？]+[{re.escape(_CLOSERS)}]*")
# Words whose dot does not end a sentence ("e.g." is seen as "e.g").
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e cf fig approx dept inc ltd co mt no nos vol ch p pp u.s u.k".split()
)
# Where a long first sentence may be cut: after a clause.
_CLAUSE_END = re.compile(r"[,;:—](?=\s)|[，、；：]")
MAX_SENTENCE_CHARS = 300  # a run-on answer with no full stop is still spoken in pieces
_SOFT_BREAK = re.compile(r"[,;:，、；：]\s*|\s+")

# --- what reads badly aloud ---------------------------------------------------------------
_FENCE = re.compile(r"^\s*(```|~~~).*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"(?:https?://|www\.)[^\s<>()\[\]]+?(?=[.,;:!?'\")\]]*(?:\s|$|[<>()\[\]]))", re.IGNORECASE)
_HTML_TAG = re.compile(r"</?[a-zA-Z][^<>]*>")
_LINE_MARKER = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*+•·▪●◦]\s+|\d{1,3}[.)]\s+|\[[ xX]\]\s+)+")
_RULE = re.compile(r"^\s*([-*_=])(\s*\1){2,}\s*$")
_EMPHASIS = re.compile(r"\*{1,3}|(?<!\w)_{1,3}|_{1,3}(?!\w)|~~|`+")
_TABLE_PIPE = re.compile(r"\s*\|\s*")
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U00002b00-\U00002bff\U0000fe00-\U0000fe0f\u200d\u20e3]"
)
_SPACES = re.compile(r"[ \t\r\f\v]+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?。，！？])")
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]")


def speakable(text: str) -> str:
    """`text` as it should be said: no markdown, URLs, HTML tags or emoji; single spaces.
    Line breaks are kept (each line is cleaned on its own); an empty string when nothing
    speakable is left."""
    text = unicodedata.normalize("NFC", text or "")
    text = _FENCE.sub("", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub("", text)
    text = _HTML_TAG.sub(" ", text)
    text = _EMOJI.sub("", text)
    lines = []
    for line in text.split("\n"):
        if _RULE.match(line):
            continue
        line = _LINE_MARKER.sub("", line)
        line = _EMPHASIS.sub("", line)
        line = _TABLE_PIPE.sub(" ", line) if "|" in line else line
        line = _EMPTY_BRACKETS.sub("", line)
        line = _SPACE_BEFORE_PUNCT.sub(r"\1", _SPACES.sub(" ", line)).strip()
        if any(ch.isalnum() for ch in line):
            lines.append(line)
    return "\n".join(lines)


# --- where sentences end --------------------------------------------------------------------


def _dot_ends_sentence(text: str, dot: int) -> bool:
    """Whether the "." at `dot` ends a sentence, judged from the word before it."""
    before = text[:dot].split()
    word = before[-1].lstrip("(\"'[“‘") if before else ""
    if word.lower() in _ABBREVIATIONS:
        return False
    if len(word) == 1 and word.isupper():  # an initial: "J. K. Rowling"
        return False
    # The number of a list item ("1. First", at the start of a line) is no sentence.
    line_start = text.rfind("\n", 0, dot) + 1
    return not (word.isdigit() and text[line_start:dot].strip() == word)


def _sentence_end(text: str, final: bool) -> int | None:
    """Index just past the end of the first complete sentence of `text`, or None when the
    first sentence may still go on (more text may come, unless `final`)."""
    for match in _END.finditer(text):
        mark, end = match.group(0), match.end()
        if mark == "\n":
            if text[: match.start()].strip():
                return end
            continue
        if mark[0] in "。！？":
            # Closing quotes may follow in the next piece.
            if end < len(text) or final:
                return end
            return None
        if end == len(text):  # "3." may become "3.14", "?" may become "?!"
            return end if final else None
        if not text[end].isspace():
            continue  # "3.14", "e.g", "example.com"
        stop = mark.rstrip(_CLOSERS)
        if stop[-1] in ".…":
            if stop == "." and not _dot_ends_sentence(text, match.start()):
                continue
            # "etc. and", "Well... maybe": a lowercase word goes on with the same sentence.
            rest = text[end:].lstrip()
            if not rest:
                return end if final else None
            if rest[0].islower():
                continue
        return end
    return None


def _spoken_length(text: str) -> int:
    """Length in Latin-letter equivalents: a CJK character takes as long to say as ~3."""
    return sum(3 if "\u3400" <= ch <= "\u9fff" else 1 for ch in text)


def _first_clause_end(text: str, min_chars: int) -> int | None:
    """Where to cut a long first sentence: after its first clause of at least `min_chars`,
    when some words are left after it."""
    for match in _CLAUSE_END.finditer(text):
        head, tail = text[: match.end()], text[match.end() :]
        if _spoken_length(head.strip()) >= min_chars and sum(ch.isalnum() for ch in tail) >= 3:
            return match.end()
    return None


def _soft_break(text: str, limit: int) -> int:
    """A cut point in a run-on text: the last clause end or space before `limit`."""
    cut = None
    for match in _SOFT_BREAK.finditer(text, 0, limit):
        if match.start() > limit // 3:
            cut = match.end()
    return cut or limit


def sentence_stream(pieces: Iterable[str], *, first_min_chars: int = 20) -> Iterator[str]:
    """Speakable sentences of the text made of `pieces`, each yielded as soon as its end is
    seen, the rest at the end. A first sentence longer than ~3 x `first_min_chars` comes in
    two: its first clause (at least `first_min_chars` long), then the rest."""
    buffer = ""
    first = True

    def ready(final: bool) -> Iterator[str]:
        nonlocal buffer, first
        while buffer:
            end = _sentence_end(buffer, final)
            if first and _spoken_length(buffer[: end or len(buffer)].strip()) > 3 * first_min_chars:
                end = _first_clause_end(buffer[: end or len(buffer)], first_min_chars) or end
            if end is None and len(buffer) > MAX_SENTENCE_CHARS:
                end = _soft_break(buffer, MAX_SENTENCE_CHARS)
            if end is None:
                if not final:
                    return
                end = len(buffer)
            sentence, buffer = speakable(buffer[:end]).replace("\n", " "), buffer[end:]
            if sentence:
                first = False
                yield sentence

    for piece in pieces:
        if piece:
            buffer += piece
            yield from ready(final=False)
    yield from ready(final=True)


def split_sentences(text: str) -> list[str]:
    """The speakable sentences of a whole text, as `sentence_stream` finds them (no clause cut)."""
    out: list[str] = []
    while text:
        end = _sentence_end(text, final=True) or len(text)
        sentence, text = speakable(text[:end]).replace("\n", " "), text[end:]
        if sentence:
            out.append(sentence)
    return out
