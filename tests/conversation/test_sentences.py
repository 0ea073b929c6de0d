"""Sentences out of a token stream, as the avatar will say them."""

from __future__ import annotations

import pytest

from lipsync_worker.conversation.sentences import sentence_stream, speakable, split_sentences

from .llm_standin import tokens


def streamed(text: str, **kwargs) -> list[str]:
    """Sentences of `text` fed as a model streams it (word-sized tokens)."""
    return list(sentence_stream(tokens(text), **kwargs))


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Hello there. How are you? I am fine!", ["Hello there.", "How are you?", "I am fine!"]),
        (
            "Dr. Smith uses tools, e.g. a saw. Pi is 3.14 or so. J. K. Rowling wrote it.",
            ["Dr. Smith uses tools, e.g. a saw.", "Pi is 3.14 or so.", "J. K. Rowling wrote it."],
        ),
        ("It cost $2.50 in 1999. Then prices rose.", ["It cost $2.50 in 1999.", "Then prices rose."]),
        ('He said "stop." Then he left.', ['He said "stop."', "Then he left."]),
        ("Well... maybe not. Wait… What?", ["Well... maybe not.", "Wait…", "What?"]),
        ("你好。今天天气很好！你呢？", ["你好。", "今天天气很好！", "你呢？"]),
        ("「好。」然后呢？", ["「好。」", "然后呢？"]),
        ("The tail has no full stop", ["The tail has no full stop"]),
        ("Steps:\n1. Mix the flour.\n2. Bake it.", ["Steps:", "Mix the flour.", "Bake it."]),
    ],
)
def test_a_stream_is_cut_into_sentences(text, sentences):
    assert streamed(text) == sentences
    # Cut the same however the text arrives: all at once, or character by character.
    assert list(sentence_stream([text])) == sentences
    assert list(sentence_stream(list(text))) == sentences


def test_each_sentence_comes_out_as_soon_as_it_is_complete():
    seen: list[str] = []

    def pieces():
        for token in tokens("The sun is a star. It is very hot. Plants love it."):
            seen.append(token)
            yield token

    stream = sentence_stream(pieces())
    assert next(stream) == "The sun is a star."
    # Only the token after the full stop was needed to know the sentence had ended.
    assert "".join(seen) == "The sun is a star. It"
    assert list(stream) == ["It is very hot.", "Plants love it."]


def test_a_long_first_sentence_is_cut_after_a_clause_so_speech_starts_sooner():
    text = (
        "Photosynthesis, which happens in the leaves of green plants, turns light, water and "
        "carbon dioxide into sugar and oxygen. The second sentence, even if long, is left whole as it is."
    )
    out = streamed(text, first_min_chars=20)
    assert out[0] == "Photosynthesis, which happens in the leaves of green plants,"
    assert out[1] == "turns light, water and carbon dioxide into sugar and oxygen."
    assert out[2] == "The second sentence, even if long, is left whole as it is."
    # A short first sentence stays whole, commas or not.
    assert streamed("Yes, of course, gladly. Next.") == ["Yes, of course, gladly.", "Next."]


def test_a_run_on_answer_is_still_spoken_in_pieces():
    text = " ".join(["word"] * 200)
    out = streamed(text)
    assert len(out) > 1 and all(len(s) <= 300 for s in out)
    assert " ".join(out) == text


def test_markdown_urls_and_emoji_are_not_spoken():
    text = (
        "## Fractions\n"
        "A **fraction** is part of a _whole_ 🍕. See [the guide](https://example.com/guide) or "
        "https://example.com/a.b.\n"
        "- one half\n"
        "* `1/4` is a quarter\n"
        "> Quote me.\n"
        "---\n"
        "| a | b |"
    )
    assert streamed(text) == [
        "Fractions",
        "A fraction is part of a whole.",
        "See the guide or.",
        "one half",
        "1/4 is a quarter",
        "Quote me.",
        "a b",
    ]


def test_speakable_keeps_plain_text_and_words_with_underscores():
    assert (
        speakable("Plain text, with 3.5 apples; snake_case stays.") == "Plain text, with 3.5 apples; snake_case stays."
    )
    assert speakable("🎉🎉 ** --- ") == ""
    assert speakable("Line one\n\n- line two") == "Line one\nline two"


def test_split_sentences_of_a_whole_text():
    assert split_sentences("Plants grow. They need light!\nWater too") == [
        "Plants grow.",
        "They need light!",
        "Water too",
    ]
    assert split_sentences("") == []
