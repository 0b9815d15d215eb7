"""Golden tests of page assembly: prunedResult JSON, Markdown rules, restructuring, images."""

import numpy as np

from deployments.datamodel import BlockResult, LayoutBox, PageResult
from deployments.labels import V1_MARKDOWN_IGNORE_LABELS
from serve_app.assemble import concatenate_markdown, page_from_pruned, page_markdown, pruned_result, restructure_pages
from serve_app.assemble.visualize import visualize
from serve_app.options import ParseOptions

SETTINGS = {"use_doc_preprocessor": False, "use_layout_detection": True, "use_chart_recognition": False,
            "use_seal_recognition": False, "use_ocr_for_image_block": False, "format_block_content": False,
            "merge_layout_blocks": True, "markdown_ignore_labels": list(V1_MARKDOWN_IGNORE_LABELS),
            "return_layout_polygon_points": True}


def page(*blocks, width=1000):
    return PageResult(page_index=0, width=width, height=1400, page_count=1, blocks=list(blocks),
                      layout_boxes=[LayoutBox(22, "text", 0.9, (1, 2, 3, 4), 1)])


def opts(pretty=True, show_formula_number=False, **settings) -> ParseOptions:
    return ParseOptions.from_report({**SETTINGS, **settings}, pretty=pretty, show_formula_number=show_formula_number)


def b(label, content="", bbox=(0, 0, 500, 100), **kw):
    return BlockResult(label=label, bbox=bbox, content=content, **kw)


def test_pruned_result_shape_orders_and_groups():
    res = pruned_result(page(b("doc_title", "T"), b("header", "H"), b("text", "a", group_id=0), b("table", "<table></table>")))
    assert list(res) == ["page_count", "width", "height", "model_settings", "parsing_res_list", "layout_det_res"]
    rows = [(r["block_label"], r["block_id"], r["block_order"], r["group_id"]) for r in res["parsing_res_list"]]
    assert rows == [("doc_title", 0, 1, 0), ("header", 1, None, 1), ("text", 2, 2, 0), ("table", 3, None, 3)]
    assert res["layout_det_res"] == {"boxes": [{"cls_id": 22, "label": "text", "score": 0.9,
                                                "coordinate": [1, 2, 3, 4], "order": 1}]}


def test_markdown_rules_per_label():
    md = page_markdown(page(
        b("doc_title", "Deep-\nLearning"), b("paragraph_title", "1.2 Methods."), b("text", "line1\nline2"),
        b("header", "ignored"), b("figure_title", "Fig 1"), b("display_formula", " $$ x $$ "),
        b("image", bbox=(100, 0, 350, 100), image_path="imgs/img_in_image_box_100_0_350_100.jpg"),
        b("abstract", "Abstract body"), b("table", "<table><tr><td>1</td></tr></table>")))
    assert md == (
        "# DeepLearning\n\n### 1.2 Methods\n\nline1\n\nline2\n\n"
        '<div style="text-align: center;">Fig 1</div>\n\n\n $$ x $$ \n\n'
        '<div style="text-align: center;"><img src="imgs/img_in_image_box_100_0_350_100.jpg" alt="Image" width="25%" /></div>\n'
        "\n\n## Abstract\n body\n\n\n<table border=1 style='margin: auto; word-wrap: break-word;'><tr>"
        "<td style='text-align: center; word-wrap: break-word;'>1</td></tr></table>")


def test_plain_markdown_and_formula_numbers():
    p = page(b("display_formula", " $$ E=mc^2 $$ "), b("formula_number", "(1)"),
             b("image", image_path="imgs/a.jpg"), b("table", "<html><body><table></table></body></html>"))
    assert page_markdown(p, opts(pretty=False, show_formula_number=True)) == (
        "$$  E=mc^2   \\tag*{(1)}$$\n\n![](imgs/a.jpg)\n\n\n\n<table></table>")  # simplify_table adds a second newline


def test_chart_recognition_renders_html_table():
    md = page_markdown(page(b("chart", "year|sales\n2020|3")), opts(use_chart_recognition=True))
    assert md == ("<table border=1 style='margin: auto; width: max-content;'>\n"
                  "  <thead><tr><th style='text-align: center;'>year</th><th style='text-align: center;'>sales</th></tr></thead>\n"
                  "  <tbody>\n    <tr><td style='text-align: center;'>2020</td><td style='text-align: center;'>3</td></tr>\n"
                  "  </tbody>\n</table>")


def test_empty_first_block_adds_no_separator():
    assert page_markdown(page(b("image"), b("text", "x"))) == '<div style="text-align: center;"></div>\n\n\nx'
    assert page_markdown(page(b("table", ""), b("text", "x")), opts(markdown_ignore_labels=[])) == "\n\n\nx"


def test_format_block_content_stores_markdown_in_json():
    res = pruned_result(page(b("paragraph_title", "2 Results")), opts(format_block_content=True))
    assert res["parsing_res_list"][0]["block_content"] == "## 2 Results"


def table(rows, bbox=(50, 100, 550, 400)):
    return b("table", "<table>" + "".join(f"<tr><td>{a}</td><td>{c}</td></tr>" for a, c in rows) + "</table>", bbox)


def test_restructure_merges_continued_table_and_relevels_titles():
    p1 = page(b("paragraph_title", "1 Intro", (50, 10, 300, 40)), table([("h1", "h2"), ("a", "b")]), b("footer", "1"))
    p2 = page(b("header", "Doc"), table([("h1", "h2"), ("c", "d")]), b("paragraph_title", "1.1 More", (50, 500, 300, 520)))
    out = restructure_pages([p1, p2])
    assert out[0].blocks[1].content == "<table><tr><td>h1</td><td>h2</td></tr><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>"
    assert out[1].blocks[1].content == ""
    assert [x.global_group_id for x in out[1].blocks] == [3, 1, 5]
    assert [x.title_level for x in (out[0].blocks[0], out[1].blocks[2])] == [1, 2]
    assert p2.blocks[1].content.endswith("<td>d</td></tr></table>")  # inputs untouched
    assert pruned_result(out[1])["parsing_res_list"][1]["global_group_id"] == 1


def test_restructure_keeps_tables_of_different_width_apart():
    out = restructure_pages([page(table([("a", "b")])), page(table([("c", "d")], bbox=(50, 100, 350, 400)))])
    assert out[1].blocks[0].content != ""


def test_concatenation_and_round_trip_from_pruned_json():
    p1, p2 = page(b("text", "one")), page(b("image", image_path="imgs/img_in_image_box_0_0_500_100.jpg"))
    merged = restructure_pages([p1, p2], concatenate=True)
    assert len(merged) == 1 and [x.content for x in merged[0].blocks] == ["one", ""]
    assert len(pruned_result(merged[0])["layout_det_res"]) == 2
    rebuilt = page_from_pruned(pruned_result(p2))
    assert rebuilt.blocks[0].image_path == "imgs/img_in_image_box_0_0_500_100.jpg"
    assert page_markdown(rebuilt) == page_markdown(p2)
    assert concatenate_markdown(["a", "b"]) == "\n\na\n\nb"


def test_visualisation_images():
    p = page(b("text", "x", (10, 10, 200, 50)))
    images = visualize(np.full((1400, 1000, 3), 255, np.uint8), p)
    assert set(images) == {"layout_det_res", "layout_order_res"}
    assert images["layout_det_res"].size == (1000, 1400)
    assert np.asarray(images["layout_order_res"])[30, 100].tolist() != [255, 255, 255]
