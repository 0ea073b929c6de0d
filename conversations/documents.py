"""Knowledge documents in, passages out: the text of an upload (UTF-8 text, Markdown, PDF)
made fit to be read aloud, and cut into passages of a few whole sentences.

Every refusal is an `InvalidInput` on the field the caller sent (`file` or `text`) that
says what is wrong and what would be accepted. Pure functions: nothing here touches the
database or the storage.
"""

from __future__ import annotations

import io
import logging
import os
import re
import time
import unicodedata
from dataclasses import dataclass

from django.conf import settings

from contracts.errors import InvalidInput

logger = logging.getLogger(__name__)

# Extension -> source kind. The content is checked too (`_sniff`).
FILE_KINDS = {".txt": "txt", ".md": "md", ".markdown": "md", ".pdf": "pdf"}
SUPPORTED_TEXT = ".txt, .md and .pdf"

# Passages: close one at about this many characters, or this many sentences; never let
# one grow past the hard limit (a sentence that long is cut at a clause or a word).
PASSAGE_TARGET_CHARS = 500
PASSAGE_MAX_SENTENCES = 4
PASSAGE_MAX_CHARS = 900
# A paragraph shorter than this (a heading, a one-liner) runs on into the next passage.
PASSAGE_MIN_CHARS = 200


@dataclass(frozen=True)
class ExtractedDocument:
    source: str  # "text" | "txt" | "md" | "pdf"
    text: str  # paragraphs separated by blank lines, ready to be chunked
    title: str  # a title found in the document (a Markdown heading, PDF metadata), or ""


def _refuse(message: str, field: str = "file", **extra) -> InvalidInput:
    return InvalidInput(message, field=field, extra=extra or None)


# --- file names --------------------------------------------------------------------------


def filename_clean(name: str) -> str:
    """The client's file name for display: no folders, no control or odd characters."""
    name = os.path.basename(str(name or "").replace("\\", "/"))
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if ch.isalnum() or ch in " ._-()[]+,")
    return re.sub(r"\s+", " ", name).strip(" .")[:255]


def _title_from_filename(name: str) -> str:
    stem = os.path.splitext(name)[0]
    return re.sub(r"[_\s]+", " ", stem).strip()[:200]


# --- bytes -> text -----------------------------------------------------------------------

# Signatures of files that are certainly not text, for a message that says what they are.
_SIGNATURES = (
    (b"%PDF-", "a PDF document"),
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "a program (ELF)"),
    (b"PK\x03\x04", "a ZIP archive (or a Word/OpenDocument file)"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"{\\rtf", "an RTF document"),
    (b"\x1f\x8b", "a gzip archive"),
)


def _sniff(data: bytes) -> str | None:
    """What a file's first bytes say it is, when that is a known binary format."""
    head = data[:8]
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            return what
    return None


def text_decode(data: bytes) -> str:
    """UTF-8 text (a byte-order mark is fine); anything else is refused with the reason."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _refuse("The file is UTF-16 text; save it as UTF-8 and send it again.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse(
            f"The file is not UTF-8 text: byte 0x{data[exc.start]:02x} at position {exc.start} is not valid "
            "UTF-8. Save it as UTF-8 and send it again."
        ) from None
    if "\x00" in text:
        raise _refuse(f"The file is not text (it holds binary data). Send {SUPPORTED_TEXT} files.")
    return text


def _control_free(text: str) -> str:
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    # Controls other than newlines and tabs (form feeds of PDFs among them) become spaces.
    return "".join(" " if (unicodedata.category(ch) == "Cc" and ch not in "\n\t") else ch for ch in text)


def paragraphs_normalise(text: str) -> str:
    """Paragraphs separated by one blank line, each on one line, spaces collapsed."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", _control_free(text)):
        line = re.sub(r"[ \t\u00a0]+", " ", block.replace("\n", " ")).strip()
        if line:
            paragraphs.append(line)
    return "\n\n".join(paragraphs)


# --- Markdown ----------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_SETEXT_UNDERLINE = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*\S+")
# Every repetition is bounded (markup spans a few words): unbounded lazy groups are
# quadratic on a hostile line ("*a *a *a ..."), in the web process.
_INLINE = (
    (re.compile(r"!\[([^\]\n]{0,300})\]\([^)\n]{0,500}\)"), r"\1"),  # images: their alt text
    (re.compile(r"\[([^\]\n]{1,300})\]\([^)\n]{0,500}\)"), r"\1"),  # links: their text
    (re.compile(r"\[([^\]\n]{1,300})\]\[[^\]\n]{0,300}\]"), r"\1"),  # reference links
    (re.compile(r"<(?:https?|mailto):[^>\n]{1,500}>"), ""),  # autolinks
    (re.compile(r"</?[A-Za-z][^>\n]{0,500}>"), ""),  # HTML tags
    (re.compile(r"`{1,3}([^`\n]{0,300})`{1,3}"), r"\1"),  # inline code
    (re.compile(r"(\*\*|__)(?=\S)(.{1,300}?)(?<=\S)\1"), r"\2"),  # strong
    (re.compile(r"(?<![\w*])\*(?=\S)(.{1,300}?)(?<=\S)\*(?!\w)"), r"\1"),  # emphasis
    (re.compile(r"(?<!\w)_(?=\S)(.{1,300}?)(?<=\S)_(?!\w)"), r"\1"),
    (re.compile(r"~~(.{1,300}?)~~"), r"\1"),  # strikethrough
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>])"), r"\1"),  # escapes
)


# Markup is taken out of lines up to this long (longer ones are not Markdown prose and stay
# as they are: answers are made speakable again when said), within this much time in all.
MARKDOWN_LINE_MAX_CHARS = 4000
MARKDOWN_SECONDS = 5.0


def _inline_plain(line: str) -> str:
    if len(line) > MARKDOWN_LINE_MAX_CHARS:
        return line
    for pattern, replacement in _INLINE:
        line = pattern.sub(replacement, line)
    return line


def _as_sentence(text: str) -> str:
    """A heading or a list item ends like a sentence, so it is read (and cut) as one."""
    text = text.strip()
    return text if not text or text[-1] in ".!?:;…" else text + "."


def markdown_to_text(markdown: str) -> tuple[str, str]:
    """(text, first heading) of a Markdown document, with the markup that means nothing
    read aloud taken out: headings, emphasis, links (their text stays), images (their alt
    text), code fences (the code stays), lists, quotes, tables, rules, HTML."""
    lines = _control_free(markdown).split("\n")
    out: list[str] = []
    title = ""
    in_fence = False
    deadline = time.monotonic() + MARKDOWN_SECONDS
    for index, line in enumerate(lines):
        if time.monotonic() > deadline:
            raise _refuse("This Markdown takes too long to read; send it as a .txt file.")
        if _FENCE.match(line):
            in_fence = not in_fence
            out.append("")
            continue
        if in_fence:
            out.append(line)
            continue
        heading = _HEADING.match(line)
        if heading:
            text = _inline_plain(heading.group(1))
            title = title or text
            out.extend(["", _as_sentence(text), ""])
            continue
        if _SETEXT_UNDERLINE.match(line) and index and out and out[-1].strip():
            title = title or out[-1].strip()
            out[-1] = _as_sentence(out[-1])
            out.append("")
            continue
        if _RULE.match(line) or _TABLE_RULE.match(line) or _REFERENCE.match(line):
            out.append("")
            continue
        line = re.sub(r"^\s*(>\s?)+", "", line)  # quotes
        item = _LIST_ITEM.match(line)
        if item:
            out.extend(["", _as_sentence(_inline_plain(line[item.end() :])), ""])
            continue
        if line.count("|") >= 2:  # a table row: its cells, as a list
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            out.extend(["", _as_sentence(", ".join(_inline_plain(c) for c in cells if c)), ""])
            continue
        out.append(_inline_plain(line))
    return "\n".join(out), title.strip()[:200]


# --- PDF ---------------------------------------------------------------------------------


# A hostile PDF is read in the web process: each stream may inflate to this much (pypdf's
# own default is 75 MB), and the whole reading may take this long, before it is refused.
PDF_STREAM_MAX_BYTES = 1024 * 1024
PDF_READ_SECONDS = 10.0


def pdf_to_text(data: bytes) -> tuple[str, str]:
    """(text, title) of a PDF, within the page, text, stream-size and time limits."""
    import pypdf  # only when a PDF comes (the web process needs it for nothing else)

    limits = {
        f"{name}_maximum_output_length": PDF_STREAM_MAX_BYTES
        for name in ("array_based_stream", "jbig2", "lzw", "run_length", "zlib", "brotli")
    }
    with pypdf.apply_configuration(**limits):
        return _pdf_to_text(data)


def _pdf_to_text(data: bytes) -> tuple[str, str]:
    import pypdf
    from pypdf.errors import LimitReachedError, PyPdfError

    max_pages, max_chars = settings.KNOWLEDGE_MAX_PDF_PAGES, settings.KNOWLEDGE_MAX_TEXT_CHARS
    deadline = time.monotonic() + PDF_READ_SECONDS
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty password (printing restrictions only).
            try:
                opened = reader.decrypt("")
            except Exception:  # noqa: BLE001 - an unsupported cipher is refused like a password
                opened = 0
            if not opened:
                raise _refuse("The PDF is protected by a password; send a copy without the password.")
        pages = len(reader.pages)
        if pages > max_pages:
            raise _refuse(
                f"The PDF has {pages} pages; at most {max_pages} are accepted. Split it into smaller documents.",
                max_pdf_pages=max_pages,
            )
        texts, total = [], 0
        for page in reader.pages:
            if time.monotonic() > deadline:
                raise _refuse(
                    f"The PDF takes too long to read (more than {PDF_READ_SECONDS:g} s); "
                    "save it again as a plain PDF, or send its text."
                )
            text = page.extract_text() or ""
            total += len(text)
            if total > max_chars * 2:  # layout spaces count double before they are collapsed
                raise _refuse(
                    f"The PDF's text is too long: more than {max_chars} characters. Split it into smaller documents.",
                    max_chars=max_chars,
                )
            texts.append(text)
        title = ""
        try:
            title = str((reader.metadata or {}).get("/Title") or "").strip()
        except Exception:  # noqa: BLE001 - a broken info dictionary is no reason to refuse the text
            title = ""
    except InvalidInput:
        raise
    except LimitReachedError:
        raise _refuse(
            f"The PDF holds content that inflates past {PDF_STREAM_MAX_BYTES // (1024 * 1024)} MB; "
            "save it again as a plain PDF, or send its text."
        ) from None
    except (PyPdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError, OSError):
        # What pypdf says is for the log, not the client.
        logger.info("A knowledge PDF could not be read", exc_info=True)
        raise _refuse("The PDF cannot be read (it is damaged or not a PDF).") from None
    return _pdf_paragraphs("\n\n".join(texts)), title[:200]


def _pdf_paragraphs(text: str) -> str:
    # Words hyphenated at line ends are joined; lines ending a sentence end a paragraph.
    text = re.sub(r"(\w)-\n(\w)", r"\1\2", _control_free(text))
    return re.sub(r"(?<=[.!?:])[ \t]*\n", "\n\n", text)


# --- one entry point ---------------------------------------------------------------------


def document_extract(data: bytes | None = None, *, filename: str = "", text: str | None = None) -> ExtractedDocument:
    """The document's speakable text, from uploaded bytes (with their file name) or from
    text sent as is. Refuses what is not a supported, readable, non-empty document."""
    if text is not None:
        source, body, title = "text", text, ""
        field = "text"
    else:
        field = "file"
        ext = os.path.splitext(filename or "")[1].lower()
        source = FILE_KINDS.get(ext)
        if source is None:
            shown = f"'{ext}' files" if ext else "Files without an extension"
            raise _refuse(f"{shown} are not supported; send {SUPPORTED_TEXT} files.", supported=sorted(FILE_KINDS))
        if not data:
            raise _refuse("The file is empty.")
        found = _sniff(data)
        if source == "pdf":
            if b"%PDF-" not in data[:1024]:  # the header may follow a little junk
                what = found or "text or some other content"
                raise _refuse(f"The file is named .pdf but holds {what}, not a PDF.")
            body, title = pdf_to_text(data)
            if not _has_words(body):
                raise _refuse(
                    "The PDF has no text (scanned pages are images): OCR it first, then send it again.",
                )
        else:
            if found is not None:
                raise _refuse(f"The file is named {ext} but holds {found}; send {SUPPORTED_TEXT} files.")
            body = text_decode(data)
            title = ""
            _length_check(body, field)  # before any parsing
            if source == "md":
                body, title = markdown_to_text(body)
    body = paragraphs_normalise(body)
    if not _has_words(body):
        raise _refuse("The document is empty: it has no words to learn from.", field=field)
    _length_check(body, field)
    return ExtractedDocument(source=source, text=body, title=title or _title_from_filename(filename_clean(filename)))


def _length_check(body: str, field: str) -> None:
    limit = settings.KNOWLEDGE_MAX_TEXT_CHARS
    if len(body) > limit:
        raise _refuse(
            f"The document's text is too long: {len(body)} characters, at most {limit}. Split it into smaller ones.",
            field=field,
            max_chars=limit,
        )


def _has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


# --- sentences and passages ----------------------------------------------------------------

# Abbreviations after which a full stop does not end the sentence.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc e.g i.e fig no vol approx ca cf al inc ltd co mt ft".split()
)
_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])[\"'”’)\]]*\s+")


def sentences_split(paragraph: str) -> list[str]:
    """A paragraph's sentences, keeping abbreviations ("Dr.", "e.g.") and initials inside."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(paragraph):
        candidate = paragraph[start : match.end()].strip()
        last_word = candidate.rstrip("\"'”’)]").rstrip(".").rsplit(" ", 1)[-1].lower()
        following = paragraph[match.end() : match.end() + 1]
        if candidate.endswith(".") and (
            last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()) or following.islower()
        ):
            continue
        sentences.append(candidate)
        start = match.end()
    rest = paragraph[start:].strip()
    if rest:
        sentences.append(rest)
    return [piece for sentence in sentences for piece in _sentence_cut(sentence)]


def _sentence_cut(sentence: str) -> list[str]:
    """A sentence longer than a passage may be, cut after clauses, else between words."""
    if len(sentence) <= PASSAGE_MAX_CHARS:
        return [sentence]
    pieces, current = [], ""
    for part in re.split(r"(?<=[,;:])\s+|\s+", sentence):
        if current and len(current) + 1 + len(part) > PASSAGE_TARGET_CHARS:
            pieces.append(current)
            current = part
        else:
            current = f"{current} {part}" if current else part
        while len(current) > PASSAGE_MAX_CHARS:  # one "word" longer than a passage
            pieces.append(current[:PASSAGE_MAX_CHARS])
            current = current[PASSAGE_MAX_CHARS:]
    if current:
        pieces.append(current)
    return pieces


def _paragraph_groups(sentences: list[str]) -> list[list[str]]:
    """A paragraph's sentences in runs of up to PASSAGE_MAX_SENTENCES / ~PASSAGE_TARGET_CHARS;
    a short last sentence stays with the run before it."""
    groups: list[list[str]] = []
    for sentence in sentences:
        group = groups[-1] if groups else None
        if group and len(group) < PASSAGE_MAX_SENTENCES and _size(group) + 1 + len(sentence) <= PASSAGE_TARGET_CHARS:
            group.append(sentence)
        else:
            groups.append([sentence])
    if len(groups) > 1 and len(groups[-1]) == 1 and len(groups[-1][0]) < PASSAGE_MIN_CHARS // 2:
        if _size(groups[-2]) + 1 + len(groups[-1][0]) <= PASSAGE_MAX_CHARS:
            groups[-2].extend(groups.pop())
    return groups


def _size(sentences: list[str]) -> int:
    return sum(len(s) for s in sentences) + max(0, len(sentences) - 1)


def passages_make(text: str) -> list[str]:
    """The document cut into passages of about 2-4 sentences (~500 characters) of whole
    sentences, so that one read aloud makes sense: long paragraphs are cut between
    sentences, short ones (a heading, a one-liner) join their neighbours."""
    groups = [group for paragraph in text.split("\n\n") for group in _paragraph_groups(sentences_split(paragraph))]
    passages: list[str] = []
    current: list[str] = []
    for group in groups:
        joined = _size(current) + 1 + _size(group)
        small = _size(current) < PASSAGE_MIN_CHARS
        if (
            current
            and joined <= PASSAGE_MAX_CHARS
            and (small or (len(current) + len(group) <= PASSAGE_MAX_SENTENCES and joined <= PASSAGE_TARGET_CHARS))
        ):
            current.extend(group)
            continue
        if current:
            passages.append(" ".join(current))
        current = list(group)
    if current:
        passages.append(" ".join(current))
    return passages
