"""knowledge_search: spoken, misheard questions find the passage that answers them among
several documents; unrelated questions find nothing; one avatar never reads another's."""

import pytest

from contracts.conversation import Passage
from conversations import services
from conversations.documents import PASSAGE_MAX_CHARS, passages_make, sentences_split
from conversations.retrieval import MIN_SCORE, phonetic_key, stem, terms
from conversations.selectors import knowledge_search
from tests.conversations import corpus


@pytest.fixture
def taught(db, avatar):
    for title, text in corpus.DOCUMENTS.items():
        services.knowledge_document_add(avatar, title=title, text=text)
    return avatar


@pytest.mark.parametrize(("question", "title", "phrase"), corpus.ASR_QUESTIONS)
def test_misheard_questions_find_their_passage(taught, question, title, phrase):
    found = knowledge_search(taught.pk, question)
    assert found, question
    assert isinstance(found[0], Passage)
    assert (found[0].title, phrase in found[0].text) == (title, True), found
    assert [p.score for p in found] == sorted((p.score for p in found), reverse=True)
    assert all(MIN_SCORE <= p.score <= 1 for p in found)


@pytest.mark.parametrize("question", corpus.UNRELATED_QUESTIONS)
def test_unrelated_questions_find_nothing(taught, question):
    assert knowledge_search(taught.pk, question) == []


def test_limits_and_empty_questions(taught, settings):
    assert len(knowledge_search(taught.pk, "water", limit=1)) == 1
    settings.CONVERSATION_PASSAGES = 2
    assert len(knowledge_search(taught.pk, "water plants sun earth")) == 2
    assert knowledge_search(taught.pk, "water", limit=0) == []
    assert knowledge_search(taught.pk, "") == []
    assert knowledge_search(taught.pk, "what is it? can you tell me?") == []  # only stopwords


def test_search_reads_only_the_avatars_own_knowledge(taught, other_avatar):
    services.knowledge_document_add(other_avatar, title="Bob", text="Quarks are elementary particles.")
    assert knowledge_search(taught.pk, "what are quarks") == []
    assert knowledge_search(other_avatar.pk, "what are quarks")[0].title == "Bob"
    assert knowledge_search(other_avatar.pk, "how many legs does a spider have") == []


def test_the_index_follows_documents_added_and_deleted(taught):
    assert knowledge_search(taught.pk, "what is a quasar") == []
    document = services.knowledge_document_add(taught, title="Quasars", text="A quasar is a very bright galaxy core.")
    assert knowledge_search(taught.pk, "what is a quasar")[0].document_id == document.pk
    services.knowledge_document_delete(document)
    assert knowledge_search(taught.pk, "what is a quasar") == []


def test_avatar_without_knowledge(db, avatar):
    assert knowledge_search(avatar.pk, "how many legs does a spider have") == []


def test_terms_stem_and_sounds():
    assert terms("The Spiders' webs, growing!") == ["spider", "web", "grow"]
    assert stem("studies") == stem("study") and stem("running") == stem("runs") == "run"
    assert terms("Ça grandit") == ["ça", "grandit"]  # other scripts are words too
    assert phonetic_key("licks") == phonetic_key("legs") and phonetic_key("son") == phonetic_key("sun")


def test_passages_keep_whole_sentences():
    text = " ".join(f"Sentence number {n} says something about spiders, e.g. their legs." for n in range(40))
    passages = passages_make(text)
    assert len(passages) > 5
    for passage in passages:
        assert passage.endswith("legs.") and passage.startswith("Sentence number")
        assert 2 <= len(sentences_split(passage)) <= 4 and len(passage) <= PASSAGE_MAX_CHARS
    assert sentences_split("Dr. Smith met Mr. Jones at 5 p.m. today. Then he left!") == [
        "Dr. Smith met Mr. Jones at 5 p.m. today.",
        "Then he left!",
    ]
    # A sentence longer than a passage is cut between words, nothing lost.
    long = "word " * 400
    assert " ".join(passages_make(long)).split() == long.split()
    assert all(len(p) <= PASSAGE_MAX_CHARS for p in passages_make(long))
