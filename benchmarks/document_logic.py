"""CPU cost of the document logic per page: ours against PaddleX 3.7.2 in the same run.

Both sides get the same generated pages, layout boxes and (recorded) model answers; what is timed
is everything around the model: filtering, cropping, merging, prompts, table tokens, text
post-processing, prunedResult JSON and Markdown. Prints a table and writes
benchmarks/results/document_logic.json.

    .venv/bin/python -m benchmarks.document_logic [--pages 200]
"""

from __future__ import annotations

import argparse
import random
import time

from benchmarks.harness import results
from devtools.generators import random_layout, synthetic_page
from devtools.official import official_page, ours_page, prune
from serve_app.assemble import page_markdown, pruned_result


def _settings(rng):
    return {"use_doc_preprocessor": False, "use_layout_detection": True, "use_chart_recognition": False,
            "use_seal_recognition": False, "use_ocr_for_image_block": False, "format_block_content": False,
            "merge_layout_blocks": True, "markdown_ignore_labels": [], "return_layout_polygon_points": True}


def _time(fn, cases) -> float:
    start = time.perf_counter()
    for case in cases:
        fn(*case)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()
    cases = []
    for seed in range(args.pages):
        rng = random.Random(seed)
        page = synthetic_page(rng, 1191, 1684)  # an A4 page at 144 DPI
        cases.append((page, random_layout(rng, 1191, 1684), _settings(rng), {}))

    def ours(page, boxes, settings, pixels):
        _, result = ours_page(page, boxes, settings, pixels)
        pruned_result(result), page_markdown(result)

    def official(page, boxes, settings, pixels):
        _, result = official_page(page, boxes, settings, dict(pixels))
        prune(result.json["res"]), result._to_markdown()

    failed = []
    for case in cases:  # random model answers include malformed OTSL, which PaddleX cannot take
        try:
            official(*case)
        except IndexError:
            failed.append(case)
    cases = [c for c in cases if not any(c is f for f in failed)]
    args.pages = len(cases)
    rows = {"ours": _time(ours, cases), "paddlex_3_7_2": _time(official, cases)}
    print(f"PaddleX raised on {len(failed)} generated pages (malformed table output); timed the other {len(cases)}")
    blocks = sum(len(c[1]) for c in cases)
    print(f"{'implementation':<16}{'pages/s':>10}{'ms/page':>10}   ({args.pages} pages, {blocks} layout boxes, 1 core)")
    for name, seconds in rows.items():
        print(f"{name:<16}{args.pages / seconds:>10.1f}{seconds / args.pages * 1000:>10.2f}")
    print(f"speed-up: {rows['paddlex_3_7_2'] / rows['ours']:.2f}x")
    results.write("document_logic", {"pages": args.pages, "layout_boxes": blocks,
                                     "pages_per_s": {k: args.pages / v for k, v in rows.items()}}, "cpu (one core)")


if __name__ == "__main__":
    main()
