"""Cross-page restructuring (table merging, title levels, concatenation) against PaddleX
``restructure_pages`` on generated multi-page documents, compared as JSON and Markdown."""

from __future__ import annotations

import random

import pytest
from devtools.official import PaddleOCRVLBlock, _PaddleOCRVLPipeline, official_result, prune

from deployments.datamodel import BlockResult, PageResult
from deployments.labels import V1_MARKDOWN_IGNORE_LABELS
from serve_app.assemble import page_markdown, pruned_result, restructure_pages
from serve_app.options import ParseOptions

pytestmark = pytest.mark.differential
TITLES = ["1 Introduction", "1.1 Scope", "1.2. Terms", "2. Methods", "2.1 Data", "(1) detail", "A. Appendix",
          "IV. Results", "第一章 总则", "二、方法", "Abstract", "References", "Related work", "Conclusion:"]
SETTINGS = {"use_doc_preprocessor": False, "use_layout_detection": True, "use_chart_recognition": False,
            "use_seal_recognition": False, "use_ocr_for_image_block": False, "format_block_content": False,
            "merge_layout_blocks": True, "markdown_ignore_labels": list(V1_MARKDOWN_IGNORE_LABELS),
            "return_layout_polygon_points": True}
OPTIONS = ParseOptions.from_report(SETTINGS)


def _table(rng, cols, rows, header):
    cells = [header] + [[f"r{rng.randrange(99)}c{c}" for c in range(cols)] for _ in range(rows)]
    return "<table>" + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells) + "</table>"


def _page(rng, index, cols, header):
    blocks, y = [], 10
    def add(label, content, h=30, x1=50, x2=550):
        nonlocal y
        # PP-DocLayoutV3's outline on some blocks (a notched polygon, as JSON gives it back)
        outline = [[x1, y], [x2, y], [x2, y + h], [x1 + 10.5, y + h], [x1, y + h / 2]] if rng.random() < 0.3 else None
        blocks.append(BlockResult(label, (x1, y, x2, y + h), content, polygon_points=outline))
        y += h + 5
    if rng.random() < 0.4:
        add(rng.choice(["header", "number"]), "Running head")
    if rng.random() < 0.6:
        add("table", _table(rng, cols, rng.randint(1, 4), header if rng.random() < 0.6 else ["x"] * cols),
            h=rng.randint(100, 300), x2=550 + rng.choice([0, 0, 20, 80]))
    for _ in range(rng.randint(1, 5)):
        if rng.random() < 0.5:
            add("paragraph_title", rng.choice(TITLES), h=rng.choice([18, 24, 36, 40]), x2=rng.choice([300, 550]))
        else:
            add("text", "Body text\nsecond line")
    if rng.random() < 0.6:
        add("table", _table(rng, cols + rng.choice([0, 0, 1]), rng.randint(1, 4), header), h=200)
    if rng.random() < 0.4:
        add(rng.choice(["footer", "footnote", "text"]), "foot")
    return PageResult(page_index=index, width=600, height=900, page_count=None, blocks=blocks)


def _official_page(page: PageResult):
    blocks = [PaddleOCRVLBlock(b.label, list(b.bbox), b.content, b.group_id, polygon_points=b.polygon_points)
              for b in page.blocks]
    return official_result({"input_path": None, "page_index": page.page_index, "page_count": None,
                            "width": page.width, "height": page.height, "layout_det_res": {"boxes": []},
                            "parsing_res_list": blocks, "imgs_in_doc": [], "model_settings": dict(SETTINGS)})




@pytest.mark.parametrize("seed", range(120))
def test_restructure_matches_official(seed):
    rng = random.Random(seed)
    cols = rng.randint(2, 4)
    header = [f"h{c}" for c in range(cols)]
    pages = [_page(rng, i, cols, header) for i in range(rng.randint(1, 4))]
    merge, relevel, concat = rng.random() < 0.8, rng.random() < 0.8, rng.random() < 0.3
    ours = restructure_pages(pages, merge, relevel, concat)
    pipe = object.__new__(_PaddleOCRVLPipeline)
    official = list(pipe.restructure_pages([_official_page(p) for p in pages], merge, relevel, concat))
    assert len(ours) == len(official)
    for mine, theirs in zip(ours, official):
        mine.layout_pages = [[] for _ in pages] if concat else None
        expected = prune(theirs.json["res"])
        got = pruned_result(mine, OPTIONS)
        if concat:
            got["layout_det_res"] = expected["layout_det_res"]  # per-page boxes: empty on both sides
        assert got == expected
        assert page_markdown(mine, OPTIONS) == theirs._to_markdown()["markdown_texts"]
