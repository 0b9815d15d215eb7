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

    .venv/bin/python -m benchmarks.quality [--repeat 1]

Writes ``benchmarks/results/quality.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time

from rapidfuzz.distance import Levenshtein

from benchmarks.harness import results
from benchmarks.harness.apps import label
from benchmarks.harness.corpora import TURNED, quality_corpus
from benchmarks.harness.inprocess import InProcess
from serve_app.assemble import assemble_document
from serve_app.config import AppConfig
from serve_app.options import ParseOptions


def plain(markdown: str) -> str:
    text = re.sub(r"<[^>]+>", " ", markdown)  # HTML tables
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", text)  # images
    text = re.sub(r"[#*|$\\`_]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def order_score(output: str, truth: list[str]) -> float:
    anchors = [output.find(" ".join(t.split()[:8])) for t in truth]
    pairs = [(a, b) for i, a in enumerate(anchors) for b in anchors[i + 1:]]
    return sum(1 for a, b in pairs if 0 <= a < b) / len(pairs) if pairs else 1.0


async def run_mode(mode: str, docs, local: InProcess) -> dict:
    rows, start = [], time.perf_counter()
    for name, data, truth, cells in docs:
        request = {"textLayer": mode, "useDocOrientationClassify": name == TURNED}  # the default is off
        options = ParseOptions.from_request(request, local.config.option_defaults("bulk"))
        began = time.perf_counter()
        results_ = [out.result for out in (await local.parse(data, options, log_id=name)).pages]
        markdown = "\n\n".join(p.markdown for p in assemble_document(results_, options))
        seconds = time.perf_counter() - began
        text, expected = plain(markdown), plain(" ".join(truth))
        lower = text.lower()
        sources = [b.source for r in results_ for b in r.blocks]
        rows.append({"document": name, "cer": round(Levenshtein.distance(text, expected) / len(expected), 4),
                     "table_cell_recall": round(sum(c.lower() in lower for c in cells) / len(cells), 3) if cells else None,
                     "reading_order": round(order_score(text, truth[1:] if len(truth) > 2 else truth), 3),
                     "blocks_from_text_layer": sources.count("text_layer"),
                     "blocks": sum(len(r.blocks) for r in results_), "seconds": round(seconds, 3)})
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
    parser.parse_args(argv)
    docs = quality_corpus()

    async def run() -> list[dict]:
        async with InProcess(AppConfig()) as local:  # the offline CPU default: lite layout + lite engine
            await run_mode("auto", docs[:1], local)  # warm-up
            return [await run_mode(mode, docs, local) for mode in ("auto", "off")]

    modes = asyncio.run(run())
    report = {"engine": "lite (PP-Layout CDLA + PP-OCRv6, offline CPU default)", "modes": modes}
    print(f"{'mode':<6}{'born-digital pages/s':>22}{'CER':>8}{'cells':>7}{'order':>7}{'scans pages/s':>15}{'CER':>8}")
    for r in modes:
        digital, scans = summary(r, "digital"), summary(r, "scans")
        r["summary"] = {"born_digital": digital, "scans": scans}
        print(f"{r['mode']:<6}{digital['pages_per_s']:>22.3f}{digital['cer']:>8.4f}{digital['table_cell_recall'] or 0:>7.2f}"
              f"{digital['reading_order']:>7.2f}{scans['pages_per_s']:>15.3f}{scans['cer']:>8.4f}")
    for r in modes:
        for row in r["documents"]:
            print(f"  {r['mode']:<5} {row['document']:<28} {row['seconds']:6.2f} s  CER {row['cer']:.4f}  order "
                  f"{row['reading_order']:.2f}  cells {row['table_cell_recall']}  text-layer blocks "
                  f"{row['blocks_from_text_layer']}/{row['blocks']}")
    results.write("quality", report, label("lite"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
