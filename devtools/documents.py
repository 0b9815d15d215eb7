"""A small corpus of hard inputs, generated on the fly (no files checked in).

Every generator returns bytes, but the pages for ``/restructure-pages`` at the end (their
``prunedResult`` as dicts). PDFs are drawn with pymupdf; the layout of ``paper_pdf`` is known
(title, two text columns, a table) so detectors can be checked against where things were drawn.
"""

from __future__ import annotations

import io

import pymupdf
from PIL import Image

LOREM = ("Layout analysis finds the regions of a page and the order in which people read them. "
         "Each region is then read by a model with a prompt for its kind. ")

#: Where paper_pdf draws things, in PDF points (A4 = 595 x 842).
PAPER_TITLE = (60, 50, 535, 90)
PAPER_LEFT = (60, 120, 290, 480)
PAPER_RIGHT = (305, 120, 535, 480)
PAPER_TABLE = (60, 520, 535, 720)


def _save(doc: pymupdf.Document, **kwargs) -> bytes:
    data = doc.tobytes(**kwargs)
    doc.close()
    return data


def text_pdf(pages: int = 3, text: str = "Page {n}: " + LOREM) -> bytes:
    """Plain text pages (A4), each starting with its page number."""
    doc = pymupdf.open()
    for n in range(1, pages + 1):
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(60, 60, 535, 780), text.format(n=n) * 4, fontsize=11)
    return _save(doc)


def paper_pdf() -> bytes:
    """A title, two text columns and a ruled table, at known positions."""
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((PAPER_TITLE[0] + 60, PAPER_TITLE[3] - 10), "A Study of Document Parsing", fontsize=26, fontname="hebo")
    for rect in (PAPER_LEFT, PAPER_RIGHT):
        page.insert_textbox(pymupdf.Rect(*rect), LOREM * 5, fontsize=10)
    x1, y1, x2, y2 = PAPER_TABLE
    for i in range(6):
        y = y1 + i * (y2 - y1) / 5
        page.draw_line((x1, y), (x2, y))
    for j in range(5):
        x = x1 + j * (x2 - x1) / 4
        page.draw_line((x, y1), (x, y2))
    for i in range(5):
        for j in range(4):
            page.insert_text((x1 + 8 + j * (x2 - x1) / 4, y1 + 25 + i * (y2 - y1) / 5), f"cell {i}.{j}", fontsize=10)
    return _save(doc)


def mixed_pdf(pages: int) -> bytes:
    """``pages`` pages alternating a plain text page and the paper page (title, columns, table)."""
    doc = pymupdf.open()
    for n in range(pages):
        doc.insert_pdf(pymupdf.open(stream=paper_pdf() if n % 2 else text_pdf(1), filetype="pdf"))
    return doc.tobytes()


def encrypted_pdf() -> bytes:
    doc = pymupdf.open(stream=text_pdf(1), filetype="pdf")
    return _save(doc, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="secret", owner_pw="owner")


def corrupt_pdf() -> bytes:
    """A PDF header followed by garbage."""
    return b"%PDF-1.7\n" + bytes(range(256)) * 8


def zero_page_pdf() -> bytes:
    """A syntactically valid PDF whose page tree is empty."""
    body = [b"%PDF-1.4\n", b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n",
            b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"]
    offsets, pos = [], 0
    for part in body:
        offsets.append(pos)
        pos += len(part)
    xref = b"xref\n0 3\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets[1:])
    return b"".join(body) + xref + b"trailer << /Size 3 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % pos


def huge_page_pdf(width_pt: float = 14000, height_pt: float = 14000) -> bytes:
    doc = pymupdf.open()
    page = doc.new_page(width=width_pt, height=height_pt)
    page.insert_text((100, 100), "a very large page", fontsize=200)
    return _save(doc)


def xobject_bomb_pdf(depth: int = 8, fan_out: int = 10, pages: int = 1) -> bytes:
    """A ~2 KB PDF whose pages draw a Form XObject that draws the next one ``fan_out`` times, ``depth``
    levels down: ``fan_out ** depth`` drawings (10^8 by default, minutes of MuPDF). With ``pages`` > 1
    the first page is the bomb and the others are plain text pages."""
    out, offsets = [b"%PDF-1.4\n"], {}

    def obj(number: int, body: bytes) -> None:
        offsets[number] = sum(len(x) for x in out)
        out.append(b"%d 0 obj\n%s\nendobj\n" % (number, body))

    def stream(extra: bytes, content: bytes) -> bytes:
        return b"<< %s /Length %d >>\nstream\n%s\nendstream" % (extra, len(content), content)

    first_form = 3 + 2 * pages
    kids = b" ".join(b"%d 0 R" % (3 + 2 * n) for n in range(pages))
    obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    obj(2, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages))
    for n in range(pages):
        resources = b"/Resources << /XObject << /F0 %d 0 R >> >>" % first_form if n == 0 else (
            b"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >>")
        obj(3 + 2 * n, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 300] /Contents %d 0 R %s >>"
            % (4 + 2 * n, resources))
        content = b"/F0 Do" if n == 0 else b"BT /F1 12 Tf 20 150 Td (Plain page %d) Tj ET" % (n + 1)
        obj(4 + 2 * n, stream(b"", content))
    for level in range(depth):
        number = first_form + level
        if level + 1 < depth:
            content = b" ".join([b"q 0.9 0 0 0.9 1 1 cm /F Do Q"] * fan_out)
            extra = b"/Type /XObject /Subtype /Form /BBox [0 0 300 300] /Resources << /XObject << /F %d 0 R >> >>" % (
                number + 1)
        else:
            content, extra = b"0 0 10 10 re f", b"/Type /XObject /Subtype /Form /BBox [0 0 300 300]"
        obj(number, stream(extra, content))
    total = first_form + depth
    start = sum(len(x) for x in out)
    out.append(b"xref\n0 %d\n0000000000 65535 f \n" % total)
    out += [b"%010d 00000 n \n" % offsets[i] for i in range(1, total)]
    out.append(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (total, start))
    return b"".join(out)


def scanned_pdf() -> bytes:
    """An image-only page (a 'scan' of a text page)."""
    pix = pymupdf.open(stream=text_pdf(1), filetype="pdf")[0].get_pixmap(dpi=100)
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(page.rect, stream=pix.tobytes("png"))
    return _save(doc)


def rotated_pdf() -> bytes:
    doc = pymupdf.open(stream=text_pdf(1), filetype="pdf")
    doc[0].set_rotation(90)
    return _save(doc)


def image_bytes(mode: str = "RGB", size=(300, 200), fmt: str = "PNG", exif_orientation: int | None = None) -> bytes:
    """An image with a dark square at the top-left corner (to check orientation).

    RGBA images have a transparent body, which must come out white.
    """
    img = Image.new("RGBA", size, (255, 255, 255, 0 if mode == "RGBA" else 255))
    img.paste((0, 0, 0, 255), (0, 0, min(size[0], 20), min(size[1], 20)))
    img = img if mode == "RGBA" else img.convert("RGB").convert(mode)
    buf = io.BytesIO()
    kwargs = {}
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def restructure_page(label: str, content: str, order=None, settings=None) -> dict:
    """A ``/restructure-pages`` page: the ``prunedResult`` of a 600 x 800 page with one block."""
    block = {"block_label": label, "block_content": content, "block_bbox": [10, 10, 500, 300], "block_id": 0,
             "block_order": order, "group_id": 0}
    return {"prunedResult": {"width": 600, "height": 800, "page_count": 2, "parsing_res_list": [block],
                             "model_settings": settings or {}}}


def table_page(cell_attrs: str = "", settings=None) -> dict:
    """A page of one 2 x 2 table whose first cell has ``cell_attrs`` (``colspan="abc"``)."""
    table = f"<table><tr><td {cell_attrs}>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>"
    return restructure_page("table", table, settings=settings)


def long_text_page(words: int = 1700) -> dict:
    """A page of one text block of ``3 * words`` words (~48 KB of answer at 1700)."""
    return restructure_page("text", "words to read " * words, order=1)
