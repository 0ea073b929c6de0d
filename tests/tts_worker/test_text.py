from tts_worker.text import FIRST_CHUNK_CHARS, MAX_SENTENCE_CHARS, normalize, split_for_streaming, split_sentences


def test_normalize_collapses_spaces_and_drops_control_characters():
    assert normalize("  Hello\u00a0\t world\x00!  \n\n  Next “line”  ") == 'Hello world !\nNext "line"'
    assert normalize("") == ""
    assert normalize(None) == ""


def test_english_sentences_keep_abbreviations_and_numbers_together():
    text = 'Mr. Smith paid 3.50 dollars. Did he? Yes! "Really." And e.g. this one'
    assert split_sentences(normalize(text)) == [
        "Mr. Smith paid 3.50 dollars.",
        "Did he?",
        "Yes!",
        '"Really."',
        "And e.g. this one",
    ]


def test_chinese_punctuation_splits_without_spaces():
    assert split_sentences("你好，世界。今天天气很好！我们去公园吧？好的") == [
        "你好，世界。",
        "今天天气很好！",
        "我们去公园吧？",
        "好的",
    ]


def test_mixed_text_paragraphs_and_bare_punctuation():
    assert split_sentences(normalize("First line\nSecond. 第三句。\n...\n")) == ["First line", "Second.", "第三句。"]
    assert split_sentences("?!") == []


def test_long_sentences_are_cut_at_a_comma_or_space():
    text = ", ".join(["this clause is part of a very long sentence"] * 20) + "."
    parts = split_sentences(text)
    assert len(parts) > 1
    assert all(len(p) <= MAX_SENTENCE_CHARS for p in parts)
    assert " ".join(parts).replace(" ", "") == text.replace(" ", "")
    assert split_sentences("x" * 500, max_chars=200) == ["x" * 200, "x" * 200, "x" * 100]


def test_a_long_first_sentence_streams_its_first_clause_first():
    text = "Good morning, and welcome to today's lesson about fractions. Next, halves."
    assert split_for_streaming(text) == [
        "Good morning,",
        "and welcome to today's lesson about fractions.",
        "Next, halves.",
    ]
    # Short first sentences, clauses too short to say alone, and no clause at all: unchanged.
    assert split_for_streaming("Hi, this is short. Bye.") == ["Hi, this is short.", "Bye."]
    long_no_clause = "A long first sentence without a single comma anywhere in it."
    assert len(long_no_clause) > FIRST_CHUNK_CHARS
    assert split_for_streaming(long_no_clause) == [long_no_clause]
    assert split_for_streaming("Yes, " + "x" * 60) == ["Yes, " + "x" * 60]


def test_chinese_first_clause_counts_characters_as_longer():
    assert split_for_streaming("你好，欢迎来到今天的课程，我们今天要学习分数的概念。第二句。") == [
        "你好，欢迎来到今天的课程，",
        "我们今天要学习分数的概念。",
        "第二句。",
    ]
