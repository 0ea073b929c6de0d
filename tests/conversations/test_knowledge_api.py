"""/api/avatars/{id}/knowledge: documents added as text, .txt, .md and .pdf; every bad
input refused with its reason and nothing written."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from conversations.models import KnowledgeChunk, KnowledgeDocument
from conversations.selectors import knowledge_search
from tests.conversations import corpus, pdfs

pytestmark = pytest.mark.django_db


def _upload(api, avatar, name: str, data: bytes, **fields):
    return api.post(
        f"/api/avatars/{avatar.pk}/knowledge", {"file": SimpleUploadedFile(name, data), **fields}, format="multipart"
    )


def _refused(response, *words, field="file"):
    assert response.status_code == 400, response.content
    body = response.json()
    for word in words:
        assert word in body["detail"], body
    if field is not None:
        assert body.get("field") == field, body
    assert KnowledgeDocument.objects.count() == 0 and KnowledgeChunk.objects.count() == 0
    return body


def test_text_document_list_detail_delete(api, avatar):
    url = f"/api/avatars/{avatar.pk}/knowledge"
    response = api.post(url, {"title": "Spiders", "text": corpus.SPIDERS}, format="json")
    assert response.status_code == 201, response.content
    document = response.json()
    assert (document["title"], document["source"], document["filename"]) == ("Spiders", "text", "")
    assert document["chunk_count"] >= 2 and document["char_count"] > 300
    listed = api.get(url).json()
    assert listed["total"] == 1 and listed["max_documents"] == 100
    assert listed["documents"][0]["id"] == document["id"]
    detail = api.get(f"{url}/{document['id']}").json()
    assert [p["position"] for p in detail["passages"]] == list(range(document["chunk_count"]))
    assert any("eight legs" in p["text"] for p in detail["passages"])
    assert knowledge_search(avatar.pk, "how many legs has a spider")
    response = api.delete(f"{url}/{document['id']}")
    assert response.status_code == 200 and "Spiders" in response.json()["message"]
    assert api.get(f"{url}/{document['id']}").status_code == 404
    assert KnowledgeChunk.objects.count() == 0
    assert knowledge_search(avatar.pk, "how many legs has a spider") == []


def test_list_is_newest_first_and_paginated(api, avatar):
    url = f"/api/avatars/{avatar.pk}/knowledge"
    for title in ("one", "two", "three"):
        api.post(url, {"title": title, "text": f"Lesson {title}. It teaches things."}, format="json")
    body = api.get(url + "?limit=2&offset=1").json()
    assert body["total"] == 3
    assert [d["title"] for d in body["documents"]] == ["two", "one"]
    assert api.get(url + "?limit=x").status_code == 400


def test_txt_upload_with_a_bom_and_a_path_in_its_name(api, avatar):
    response = _upload(api, avatar, "..\\..\\etc/water cycle.txt", b"\xef\xbb\xbf" + corpus.WATER_CYCLE.encode())
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["source"], body["filename"], body["title"]) == ("txt", "water cycle.txt", "water cycle")
    assert KnowledgeChunk.objects.filter(text__startswith="\ufeff").count() == 0


def test_markdown_is_stripped_for_speech(api, avatar):
    markdown = (
        "# Spiders and *their* webs\n\nSpiders spin **silk** from [spinnerets](https://example.org/s).\n\n"
        "```python\nweb = spin(silk)\n```\n\n- Orb webs are round\n- Funnel webs are *tubes*\n\n"
        "| kind | legs |\n|---|---|\n| spider | 8 |\n\n> Quote: `silk` is strong.\n\n---\n\n![A spider](s.png)\n"
    )
    response = _upload(api, avatar, "spiders.md", markdown.encode())
    assert response.status_code == 201, response.content
    assert response.json()["title"] == "Spiders and their webs"
    text = " ".join(KnowledgeChunk.objects.order_by("position").values_list("text", flat=True))
    for markup in ("#", "**", "*", "](", "```", "|", "`", "---", "> ", "https://"):
        assert markup not in text, (markup, text)
    for words in ("Spiders spin silk from spinnerets.", "web = spin(silk)", "Orb webs are round.", "spider, 8"):
        assert words in text, (words, text)


def test_pdf_upload(api, avatar):
    pdf = pdfs.text_pdf(
        "Volcanoes are openings in the crust of the Earth.\nMagma that reaches the sur-\nface is called lava.",
        "Mount Etna is an active volcano in Sicily.",
    )
    response = _upload(api, avatar, "volcanoes.pdf", pdf, title="Volcanoes")
    assert response.status_code == 201, response.content
    assert response.json()["source"] == "pdf"
    text = " ".join(KnowledgeChunk.objects.values_list("text", flat=True))
    assert "surface is called lava." in text and "Mount Etna" in text
    assert knowledge_search(avatar.pk, "what is lava")[0].title == "Volcanoes"


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("scan.pdf", pdfs.image_only_pdf(), ["no text", "OCR it first"]),
        ("locked.pdf", pdfs.encrypted_pdf(), ["password"]),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", ["cannot be read"]),
        ("notes.pdf", b"Just some notes, not a PDF at all.", ["named .pdf", "not a PDF"]),
        ("latin1.txt", "Caf\u00e9 cr\u00e8me".encode("latin-1"), ["not UTF-8", "0xe9", "position 3"]),
        ("utf16.txt", "Hello".encode("utf-16"), ["UTF-16"]),
        ("empty.txt", b"", ["empty"]),
        ("blank.md", b"  \n\n# \n---\n", ["empty"]),
        ("setup.txt", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00This program cannot be run in DOS mode", ["Windows program"]),
        ("nul.txt", b"text\x00with\x00nul bytes", ["not text"]),
        ("lesson.pdf.txt", pdfs.text_pdf("A PDF in disguise."), ["a PDF document"]),
        ("lesson.docx", b"PK\x03\x04 word document", [".docx", ".txt, .md and .pdf"]),
        ("README", b"no extension", ["without an extension", ".txt, .md and .pdf"]),
    ],
)
def test_bad_files_are_refused_with_the_reason(api, avatar, name, data, words):
    _refused(_upload(api, avatar, name, data), *words)


@pytest.mark.parametrize(
    ("body", "words", "field"),
    [
        ({}, ["Send a file"], "file"),
        ({"title": "Nothing"}, ["Send a file"], "file"),
        ({"text": "   \n "}, ["empty"], "text"),
        ({"text": "Some text", "title": "t" * 201}, ["at most 200"], "title"),
        ({"text": "Some text", "colour": "red"}, ["Unknown fields: colour"], "colour"),
    ],
)
def test_bad_json_is_refused(api, avatar, body, words, field):
    _refused(api.post(f"/api/avatars/{avatar.pk}/knowledge", body, format="json"), *words, field=field)


def test_file_and_text_together_are_refused(api, avatar):
    response = _upload(api, avatar, "a.txt", b"Some text.", text="More text.")
    _refused(response, "either a file or a text", field="text")


@override_settings(KNOWLEDGE_MAX_FILE_MB=1)
def test_a_file_over_the_size_limit_is_refused(api, avatar):
    data = b"Spiders have eight legs. " * (1024 * 1024 // 25 + 10)
    _refused(_upload(api, avatar, "big.txt", data), "too large", "1 MB")


@override_settings(KNOWLEDGE_MAX_TEXT_CHARS=100)
def test_a_text_over_the_length_limit_is_refused(api, avatar):
    body = _refused(
        api.post(f"/api/avatars/{avatar.pk}/knowledge", {"text": "Spiders. " * 30}, format="json"),
        "too long",
        "at most 100",
        field="text",
    )
    assert body["max_chars"] == 100


@override_settings(KNOWLEDGE_MAX_PDF_PAGES=2)
def test_a_pdf_over_the_page_limit_is_refused(api, avatar):
    _refused(_upload(api, avatar, "long.pdf", pdfs.text_pdf("One.", "Two.", "Three.")), "3 pages", "at most 2")


@override_settings(KNOWLEDGE_MAX_DOCUMENTS=2)
def test_too_many_documents(api, avatar):
    url = f"/api/avatars/{avatar.pk}/knowledge"
    for number in range(2):
        assert api.post(url, {"text": f"Lesson {number}."}, format="json").status_code == 201
    response = api.post(url, {"text": "One too many."}, format="json")
    assert response.status_code == 400
    assert response.json()["max_documents"] == 2
    assert "2 documents" in response.json()["detail"]
    assert KnowledgeDocument.objects.count() == 2


def test_an_avatars_knowledge_is_bounded_as_a_whole(api, avatar, settings):
    settings.KNOWLEDGE_MAX_AVATAR_CHARS = 100
    url = f"/api/avatars/{avatar.pk}/knowledge"
    lesson = "Spiders have eight legs and spin silk to make their webs."  # 57 characters
    assert api.post(url, {"text": lesson}, format="json").status_code == 201
    response = api.post(url, {"text": lesson}, format="json")
    assert response.status_code == 400
    assert response.json()["max_avatar_chars"] == 100
    assert "KNOWLEDGE_MAX_AVATAR_CHARS" in response.json()["detail"]
    assert KnowledgeDocument.objects.filter(avatar=avatar).count() == 1


def test_unknown_avatar_or_document_is_404(api, avatar, other_avatar):
    assert api.get("/api/avatars/999999/knowledge").status_code == 404
    assert api.get(f"/api/avatars/{avatar.pk}/knowledge/999999").status_code == 404
    theirs = other_avatar.knowledge_documents.create(title="Secret", source="text", char_count=1, chunk_count=0)
    # Another avatar's document under my avatar's id is not found either.
    assert api.get(f"/api/avatars/{avatar.pk}/knowledge/{theirs.pk}").status_code == 404
    assert api.delete(f"/api/avatars/{other_avatar.pk}/knowledge/{theirs.pk}").status_code == 404
    assert api.post(f"/api/avatars/{other_avatar.pk}/knowledge", {"text": "x"}, format="json").status_code == 404
    assert KnowledgeDocument.objects.filter(pk=theirs.pk).exists()


@pytest.fixture
def roomy_server(process_env, tmp_path):
    """The real web server, allowing 5 million characters of knowledge text (the default,
    500,000, would refuse the 3 MB document below for its length, not its size)."""
    from tests.conftest import DaphneServer

    limits = {"KNOWLEDGE_MAX_TEXT_CHARS": "5000000", "KNOWLEDGE_MAX_AVATAR_CHARS": "5000000"}
    server = DaphneServer({**process_env, **limits}, tmp_path / "web.log")
    yield server
    server.stop()


def test_the_web_server_takes_knowledge_uploads_up_to_their_own_limit(transactional_db, roomy_server, tutor):
    """Through the real server: a 3 MB document gets in (JSON routes stop at 2 MB,
    REQUEST_MAX_BODY_MB); one past KNOWLEDGE_MAX_FILE_MB is a 413 before it is buffered."""
    import httpx
    from rest_framework_simplejwt.tokens import RefreshToken

    from tests.conversations.conftest import make_avatar

    avatar = make_avatar(tutor, "big_doc")
    headers = {"Authorization": f"Bearer {RefreshToken.for_user(tutor.owner).access_token}"}
    url = f"{roomy_server.url}/api/avatars/{avatar.pk}/knowledge"
    sentence = "The mitochondria is the powerhouse of the cell, and it makes energy for the body. "
    text = (sentence * (3 * 1024 * 1024 // len(sentence))).encode()
    with httpx.Client(timeout=120) as http:
        fits = http.post(url, headers=headers, files={"file": ("biology.txt", text, "text/plain")})
        assert fits.status_code == 201, fits.text
        assert fits.json()["char_count"] == len(text.strip())
        too_big = b"a " * (11 * 1024 * 1024 // 2)
        refused = http.post(url, headers=headers, files={"file": ("huge.txt", too_big, "text/plain")})
        assert refused.status_code == 413, refused.text


def test_a_pdf_that_inflates_past_the_stream_limit_is_refused(api, avatar):
    """200 MB of content stream behind a few hundred kilobytes: refused with the reason,
    never inflated whole in the web process."""
    bomb = pdfs.inflate_bomb_pdf(200)
    assert len(bomb) < 1024 * 1024
    response = api.post(
        f"/api/avatars/{avatar.pk}/knowledge",
        {"file": SimpleUploadedFile("lesson.pdf", bomb, content_type="application/pdf")},
        format="multipart",
    )
    assert response.status_code == 400, response.content
    assert "PDF" in response.json()["detail"]
    assert not KnowledgeDocument.objects.filter(avatar=avatar).exists()
