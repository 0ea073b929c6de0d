"""Small PDFs written byte by byte: pages of text (Helvetica), a page holding only an image
(what a scan looks like), an encrypted one."""

from __future__ import annotations

import io


def _build(objects: list[bytes]) -> bytes:
    """A PDF of these objects (numbered from 1; object 1 is the catalogue)."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def _pages(third: bytes, pages: list[tuple[bytes, bytes]]) -> bytes:
    """Catalogue (1), page tree (2), a shared object (3: a font or an image), then per page
    its content stream and the page."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", third]
    kids = []
    for content, resources in pages:
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R /Resources %s >>"
            % (len(objects), resources)
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    return _build(objects)


def _escape(text: str) -> bytes:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")


def text_pdf(*pages: str) -> bytes:
    """One page per string; each line of a string is a line of text."""
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    built = []
    for page in pages:
        lines = [b"BT /F1 11 Tf 72 740 Td 14 TL"]
        lines += [b"(" + _escape(line) + b") Tj T*" for line in page.split("\n")]
        lines.append(b"ET")
        built.append((b"\n".join(lines), b"<< /Font << /F1 3 0 R >> >>"))
    return _pages(font, built)


def image_only_pdf() -> bytes:
    """A page that shows a small grey picture and has no text."""
    image = (
        b"<< /Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceGray /BitsPerComponent 8"
        b" /Length 4 >>\nstream\n\x10\x80\x80\xf0\nendstream"
    )
    return _pages(image, [(b"q 200 0 0 200 100 400 cm /Im1 Do Q", b"<< /XObject << /Im1 3 0 R >> >>")])


def encrypted_pdf(password: str = "secret") -> bytes:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(text_pdf("A secret lesson about spiders."))))
    writer.encrypt(user_password=password, owner_password=password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def inflate_bomb_pdf(megabytes: int = 200) -> bytes:
    """A page whose content stream is a few hundred kilobytes of Flate that inflate to
    `megabytes` MB of spaces: what a hostile upload would send."""
    import zlib

    content = zlib.compress(b"BT /F1 11 Tf 72 740 Td (Hello) Tj ET\n" + b" " * (megabytes * 1024 * 1024), 9)
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [5 0 R] /Count 1 >>", font]
    objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream")
    objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
                   b" /Resources << /Font << /F1 3 0 R >> >> >>")  # fmt: skip
    return _build(objects)
