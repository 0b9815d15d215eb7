"""Quality and speed of the offline CPU default (PP-Layout CDLA + PP-OCRv6) on generated documents
with known text, with the PDF's text layer (``text_layer: auto``) and without it (``off``).

Documents (A4, Latin text, every paragraph different so that reading-order errors cost characters):
one column; two columns under a title; a ruled table under a paragraph; a formula line between
paragraphs; the one- and two-column pages as scans (an image, no text layer); the two-column scan
with an invisible OCR layer (text that must not be trusted); a one-column scan turned 90°, sent
with ``useDocOrientationClassify`` (the other pages use the default, off). Figures per mode:

- CER: character error rate of the page's Markdown text (Markdown marks and whitespace runs
  removed) against the ground truth in reading order (Levenshtein distance / ground-truth length);
- table cell recall: share of the table's cells whose text appears in the output;
- reading order: share of ground-truth paragraph pairs whose first words appear in the right order;
- pages/s end to end in one process (render, layout, recognition, Markdown).

    .venv/bin/python benchmarks/quality.py [--repeat 1]

Writes ``benchmarks/results/quality.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pymupdf  # noqa: E402
from rapidfuzz.distance import Levenshtein  # noqa: E402

from deployments.layout.detector import LayoutDetector  # noqa: E402
from deployments.recognizer.recognizer import Recognizer  # noqa: E402
from deployments.renderer import Renderer  # noqa: E402
from serve_app.config import AppConfig  # noqa: E402
from serve_app.options import ParseOptions  # noqa: E402
from serve_app.pagepath import assemble_document  # noqa: E402

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


def corpus() -> list[tuple[str, bytes, list[str], list[str]]]:
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


def plain(markdown: str) -> str:
    text = re.sub(r"<[^>]+>", " ", markdown)  # HTML tables
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", text)  # images
    text = re.sub(r"[#*|$\\`_]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def order_score(output: str, truth: list[str]) -> float:
    anchors = [output.find(" ".join(t.split()[:8])) for t in truth]
    pairs = [(a, b) for i, a in enumerate(anchors) for b in anchors[i + 1:]]
    return sum(1 for a, b in pairs if 0 <= a < b) / len(pairs) if pairs else 1.0


async def run_mode(mode: str, docs, detector, recognizer, renderer) -> dict:
    rows, start = [], time.perf_counter()
    for name, data, truth, cells in docs:
        request = {"textLayer": mode, "useDocOrientationClassify": name == TURNED}  # the default is off
        options = ParseOptions.from_request(request, detector.config.options, recognizer.config.plan, visualize=False)
        began = time.perf_counter()
        pages = list(renderer.render(data, name, orient=options.orient))
        boxes = detector.detect(pages, [options.layout] * len(pages))
        results = [await recognizer.recognize(p, b, options.page_request()) for p, b in zip(pages, boxes)]
        markdown = "\n\n".join(p.markdown for p in assemble_document(results, options))
        seconds = time.perf_counter() - began
        text, expected = plain(markdown), plain(" ".join(truth))
        lower = text.lower()
        sources = [b.source for r in results for b in r.blocks]
        rows.append({"document": name, "cer": round(Levenshtein.distance(text, expected) / len(expected), 4),
                     "table_cell_recall": round(sum(c.lower() in lower for c in cells) / len(cells), 3) if cells else None,
                     "reading_order": round(order_score(text, truth[1:] if len(truth) > 2 else truth), 3),
                     "blocks_from_text_layer": sources.count("text_layer"),
                     "blocks": sum(len(r.blocks) for r in results), "seconds": round(seconds, 3)})
    seconds = time.perf_counter() - start
    return {"mode": mode, "pages": len(docs), "seconds": round(seconds, 1), "pages_per_s": round(len(docs) / seconds, 3),
            "documents": rows}


def summary(result: dict, kind: str) -> dict:
    rows = [r for r in result["documents"] if r["document"].startswith("scan") == (kind == "scans")]
    tables = [r["table_cell_recall"] for r in rows if r["table_cell_recall"] is not None]
    return {"pages_per_s": round(len(rows) / sum(r["seconds"] for r in rows), 3),
            "cer": round(sum(r["cer"] for r in rows) / len(rows), 4),
            "table_cell_recall": round(sum(tables) / len(tables), 3) if tables else None,
            "reading_order": round(sum(r["reading_order"] for r in rows) / len(rows), 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "quality.json"))
    args = parser.parse_args(argv)
    config = AppConfig()  # the offline CPU default: lite layout + lite engine
    renderer, detector, recognizer = Renderer(config.renderer), LayoutDetector(config.layout), Recognizer(config.recognizer)
    docs = corpus()

    async def run() -> list[dict]:
        await recognizer.start()
        await run_mode("auto", docs[:1], detector, recognizer, renderer)  # warm-up
        return [await run_mode(mode, docs, detector, recognizer, renderer) for mode in ("auto", "off")]

    results = asyncio.run(run())
    report = {"engine": "lite (PP-Layout CDLA + PP-OCRv6, offline CPU default)", "machine_cpus": _cpus(),
              "modes": results}
    print(f"{'mode':<6}{'born-digital pages/s':>22}{'CER':>8}{'cells':>7}{'order':>7}{'scans pages/s':>15}{'CER':>8}")
    for r in results:
        digital, scans = summary(r, "digital"), summary(r, "scans")
        r["summary"] = {"born_digital": digital, "scans": scans}
        print(f"{r['mode']:<6}{digital['pages_per_s']:>22.3f}{digital['cer']:>8.4f}{digital['table_cell_recall'] or 0:>7.2f}"
              f"{digital['reading_order']:>7.2f}{scans['pages_per_s']:>15.3f}{scans['cer']:>8.4f}")
    for r in results:
        for row in r["documents"]:
            print(f"  {r['mode']:<5} {row['document']:<28} {row['seconds']:6.2f} s  CER {row['cer']:.4f}  order "
                  f"{row['reading_order']:.2f}  cells {row['table_cell_recall']}  text-layer blocks "
                  f"{row['blocks_from_text_layer']}/{row['blocks']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
