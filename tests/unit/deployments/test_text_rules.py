"""Golden tests of the text rules: OTSL tables, repetition truncation, LaTeX delimiters."""

from deployments.recognizer.otsl import otsl_to_html, pad_rows
from deployments.recognizer.textpost import (
    parse_spotting,
    postprocess_block_text,
    rewrite_latex_delimiters,
    truncate_repetitive_content,
)


def test_otsl_spans_and_escaping():
    otsl = "<fcel>A<lcel><fcel>B<nl><ucel><xcel><fcel>x<y<nl>"
    assert otsl_to_html(otsl) == (
        '<table><tr><td rowspan="2" colspan="2">A</td><td>B</td></tr><tr><td>x&lt;y</td></tr></table>')


def test_otsl_rows_padded_to_best_width():
    assert pad_rows("<fcel>a<fcel>b<nl><fcel>c<nl>") == "<fcel>a<fcel>b<nl><fcel>c<ecel><nl>"
    assert otsl_to_html("<fcel>a<fcel>b<nl><fcel>c<nl>") == (
        "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td></td></tr></table>")


def test_otsl_without_cells_is_empty():
    assert otsl_to_html("") == ""
    assert otsl_to_html("no tags") == ""


def test_truncation_of_repeated_suffix_unit_and_lines():
    phrase = "Result: " + "abcdefgh " * 30
    assert truncate_repetitive_content(phrase, min_count=50) == "Result:"  # on the stripped text
    assert truncate_repetitive_content("ab" * 40, min_count=50) == "ab"
    lines = "\n".join(["same line"] * 12 + ["other"])
    assert truncate_repetitive_content(lines, min_count=50) == "same line"
    assert truncate_repetitive_content("short " * 5, min_count=50) == "short " * 5


def test_latex_delimiters():
    assert rewrite_latex_delimiters("area \\(x^2\\) is $5$", "text") == "area  $ x^2 $ is 5"
    assert rewrite_latex_delimiters("\\[\\[E=mc^2\\]\\]", "display_formula") == " $$ E=mc^2 $$ "
    assert rewrite_latex_delimiters("\\(1\\)", "formula_number") == "  1 "
    assert rewrite_latex_delimiters("$only dollars$", "text") == "$only dollars$"


def test_table_block_becomes_html_and_bad_otsl_keeps_raw_text():
    assert postprocess_block_text("<fcel>1<nl>", "table")[0] == "<table><tr><td>1</td></tr></table>"
    broken = "<fcel>1 & 2<fcel>\n<xcel><nl><xcel>"  # PaddleX raises IndexError on this
    content, _, warning = postprocess_block_text(broken, "table")
    assert content == broken
    assert warning.startswith("table output is not valid OTSL")


def test_spotting_output_to_polygons():
    text = "<|LOC_BEGIN|>" + "".join(f"<|LOC_{v}|>" for v in (0, 0, 500, 0, 500, 1000, 0, 1000)) + \
        "<|LOC_END|><|TEXT_START|>hello<|TEXT_END|>"
    content, res = parse_spotting(text, 200, 100)
    assert content == "hello"
    assert res == {"rec_polys": [[(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)]], "rec_texts": ["hello"]}
