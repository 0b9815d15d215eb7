"""Corpora of generated documents with known text, and PDFs of many pages."""

from __future__ import annotations

from pathlib import Path

import pymupdf

from devtools.documents import mixed_pdf, paper_pdf, text_pdf

__all__ = ["WORDS", "TURNED", "paragraph", "one_column", "two_columns", "table_page", "formula_page", "scanned",
           "quality_corpus", "page_corpus", "pdf_corpus", "bound", "text_pdf", "paper_pdf", "mixed_pdf"]

WORDS = ("archive ledger river signal harvest copper lantern meadow orbit parcel quartz ribbon saddle "
         "timber velvet walnut beacon canyon delta ember falcon garnet harbor island jasmine kernel "
         "lattice marble nectar oasis pepper quiver raven summit tundra umber valley willow yonder zephyr").split()


TURNED = "scan turned 90°"


def paragraph(seed: int, words: int = 45) -> str:
    """A sentence-like paragraph that differs from every other seed's."""
    out = [WORDS[(seed * 7 + i * (seed % 5 + 3)) % len(WORDS)] for i in range(words)]
    out[0] = out[0].capitalize()
    return " ".join(out) + "."


def one_column(seed: int) -> tuple[pymupdf.Document, list[str], list[str]]:
    doc = pymupdf.open()
    page = doc.new_page()
    title = f"Report {seed} on Regional Archives"
    page.insert_text((60, 80), title, fontsize=20, fontname="hebo")
    paras = [paragraph(seed * 10 + i) for i in range(4)]
    for i, text in enumerate(paras):
        page.insert_textbox(pymupdf.Rect(60, 110 + i * 160, 535, 250 + i * 160), text, fontsize=11)
    return doc, [title, *paras], []


def two_columns(seed: int) -> tuple[pymupdf.Document, list[str], list[str]]:
    doc = pymupdf.open()
    page = doc.new_page()
    title = f"Field Notes {seed}: Rivers and Harbors"
    page.insert_text((60, 80), title, fontsize=20, fontname="hebo")
    paras = [paragraph(seed * 20 + i, 60) for i in range(4)]
    for i, text in enumerate(paras):
        x0 = 60 if i < 2 else 310
        y0 = 110 + (i % 2) * 330
        page.insert_textbox(pymupdf.Rect(x0, y0, x0 + 225, y0 + 310), text, fontsize=10)
    return doc, [title, *paras], []


def table_page(seed: int) -> tuple[pymupdf.Document, list[str], list[str]]:
    doc = pymupdf.open()
    page = doc.new_page()
    intro = paragraph(seed * 30)
    page.insert_textbox(pymupdf.Rect(60, 60, 535, 200), intro, fontsize=11)
    x1, y1, x2, y2 = 60, 240, 535, 480
    cells = []
    for i in range(6):
        page.draw_line((x1, y1 + i * (y2 - y1) / 5), (x2, y1 + i * (y2 - y1) / 5))
    for j in range(5):
        page.draw_line((x1 + j * (x2 - x1) / 4, y1), (x1 + j * (x2 - x1) / 4, y2))
    for i in range(5):
        for j in range(4):
            text = f"{WORDS[(seed + i * 4 + j) % len(WORDS)]} {i}{j}"
            cells.append(text)
            page.insert_text((x1 + 8 + j * (x2 - x1) / 4, y1 + 28 + i * (y2 - y1) / 5), text, fontsize=10)
    return doc, [intro, " ".join(cells)], cells


def formula_page(seed: int) -> tuple[pymupdf.Document, list[str], list[str]]:
    doc = pymupdf.open()
    page = doc.new_page()
    first, last = paragraph(seed * 40), paragraph(seed * 40 + 1)
    page.insert_textbox(pymupdf.Rect(60, 60, 535, 200), first, fontsize=11)
    formula = "E = m c 2 + a b"
    page.insert_text((220, 250), formula, fontsize=16, fontname="tiit")
    page.insert_textbox(pymupdf.Rect(60, 300, 535, 440), last, fontsize=11)
    return doc, [first, last], []


def scanned(doc: pymupdf.Document, ocr_layer: list[str] | None = None) -> pymupdf.Document:
    """The page as a 150 DPI image in an image-only PDF; optionally with an invisible text layer
    (here deliberately wrong text, as a poor OCR layer can be)."""
    pix = doc[0].get_pixmap(matrix=pymupdf.Matrix(150 / 72, 150 / 72))
    out = pymupdf.open()
    page = out.new_page()
    page.insert_image(page.rect, stream=pix.tobytes("png"))
    if ocr_layer:
        page.insert_textbox(pymupdf.Rect(60, 60, 535, 780), " ".join(ocr_layer), fontsize=10, render_mode=3)
    return out


def quality_corpus() -> list[tuple[str, bytes, list[str], list[str]]]:
    """(name, PDF, ground truth in reading order, table cells) of the quality benchmark's pages."""
    docs = []
    for seed in (1, 2):
        for name, make in (("one column", one_column), ("two columns", two_columns), ("table", table_page),
                           ("formula", formula_page)):
            doc, truth, cells = make(seed)
            docs.append((name, doc.tobytes(), truth, cells))
        for name, make in (("scan, one column", one_column), ("scan, two columns", two_columns)):
            doc, truth, cells = make(seed)
            docs.append((name, scanned(doc).tobytes(), truth, cells))
        doc, truth, cells = one_column(seed)
        turned = scanned(doc)
        turned[0].set_rotation(90)  # a scan fed in sideways
        docs.append((TURNED, turned.tobytes(), truth, cells))
        doc, truth, cells = two_columns(seed)
        wrong = [paragraph(900 + i) for i in range(3)]
        docs.append(("scan + invisible OCR layer", scanned(doc, wrong).tobytes(), truth, cells))
    return docs



def page_corpus(pages: int) -> list[bytes]:
    """``pages`` one-page PDFs: one-column, two-column, table and formula pages in turn (~15 blocks)."""
    makers = (one_column, two_columns, table_page, formula_page)
    return [makers[i % 4](i + 1)[0].tobytes() for i in range(pages)]


def pdf_corpus(root: Path, pages: int, pages_per_doc: int = 10) -> list[Path]:
    """``pages`` pages as ``pages_per_doc``-page text PDFs in ``root`` (a bulk job's input)."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(pages // pages_per_doc):
        path = root / f"doc{i:05d}.pdf"
        path.write_bytes(text_pdf(pages_per_doc, f"Document {i}, page {{n}}: a short line to read. "))
        paths.append(path)
    return paths


def bound(docs: list[bytes], pages: int) -> list[bytes]:
    """One-page documents bound ``pages`` at a time into PDFs of that many pages."""
    out = []
    for i in range(0, len(docs), pages):
        book = pymupdf.open()
        for data in docs[i : i + pages]:
            with pymupdf.open(stream=data, filetype="pdf") as page:
                book.insert_pdf(page)
        out.append(book.tobytes())
        book.close()
    return out
