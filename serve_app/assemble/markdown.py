"""Markdown of a page, label by label, as PaddleX ``PaddleOCRVLResult._to_markdown``."""

from __future__ import annotations

import re
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Callable, Optional

from deployments.datamodel import BlockResult, PageResult

if TYPE_CHECKING:
    from serve_app.options import ParseOptions

Handler = Callable[[BlockResult], str]

_NUMBERING = (
    r"(?:[1-9][0-9]*(?:\.[1-9][0-9]*)*[\.、]?|[\(\（](?:[1-9][0-9]*|["
    r"一二三四五六七八九十百千万亿零壹贰叁肆伍陆柒捌玖拾]+)[\)\）]|["
    r"一二三四五六七八九十百千万亿零壹贰叁肆伍陆柒捌玖拾]+[、\.]?|(?:I|II|III|IV|V|VI|VII|VIII|IX|X)(?:\.|\s))"
)
TITLE_RE = re.compile(r"^\s*(" + _NUMBERING + r")(\s*)(.*)$")
CENTER_DIV = '<div style="text-align: center;">{}</div>\n'


def collapse(s: str) -> str:
    """Join hyphenated line breaks and turn newlines into spaces."""
    return s.replace("-\n", "").replace("\n", " ")


def format_title(block: BlockResult) -> str:
    """``## 1 Intro`` / ``### 1.1 …``: level from the dots of the normalised numbering."""
    title = block.content
    match = TITLE_RE.match(title)
    if match:
        title = match.group(1).strip() + " " + match.group(3).lstrip()
    title = title.rstrip(".")
    level = title.count(".") + 1 if "." in title else 1
    return collapse(f"#{'#' * level} {title}")


def format_paragraph_title(block: BlockResult) -> str:
    if block.title_level is None:
        return format_title(block)
    return collapse(f"#{'#' * block.title_level} {block.content}")


def _normalize_newlines(block: BlockResult) -> str:
    return block.content.replace("\n\n", "\n").replace("\n", "\n\n")


def _first_line(block: BlockResult, templates, fmt, splitter) -> str:
    lines = block.content.split(splitter)
    for idx, line in enumerate(lines):
        if line.strip() == "":
            continue
        if line.lower() in templates:
            lines[idx] = fmt(line)
        break
    return splitter.join(lines)


def _image_html(block: BlockResult, page_width: int, show_content: bool) -> str:
    if block.image_path is None:
        return ""
    scale = int((block.bbox[2] - block.bbox[0]) / page_width * 100)
    info = '<img src="{}" alt="Image" width="{}%" />'.format(collapse(block.image_path), scale)
    return info + ("\n\n" + block.content + "\n\n" if show_content else "")


def _image_plain(block: BlockResult, show_content: bool) -> str:
    if not block.image_path:
        return ""
    info = "![]({})".format(collapse(block.image_path))
    return info + ("\n\n" + block.content + "\n\n" if show_content else "")


def chart_to_html(block: BlockResult) -> str:
    """Chart pipe-text (first line = header) → centred HTML table."""
    lines = block.content.split("\n")
    cell = "<{0} style='text-align: center;'>{1}</{0}>"
    head = "".join(cell.format("th", c.strip()) for c in lines[0].split("|"))
    rows = "".join(
        "    <tr>" + "".join(cell.format("td", c.strip()) for c in line.split("|")) + "</tr>\n"
        for line in lines[1:]
    )
    return ("<table border=1 style='margin: auto; width: max-content;'>\n"
            f"  <thead><tr>{head}</tr></thead>\n  <tbody>\n{rows}  </tbody>\n</table>")


def table_centered(block: BlockResult) -> str:
    return (
        block.content.replace("<table>", "<table border=1 style='margin: auto; word-wrap: break-word;'>")
        .replace("<th>", "<th style='text-align: center; word-wrap: break-word;'>")
        .replace("<td>", "<td style='text-align: center; word-wrap: break-word;'>")
    )


def simplify_table(html: str) -> str:
    return "\n" + html.replace("<html>", "").replace("</html>", "").replace("<body>", "").replace("</body>", "")


def _kind_funcs(options: "ParseOptions", page_width: int, pretty: bool) -> dict[str, Handler]:
    ocr_images = options.plan.use_ocr_for_image_block
    seal_rec = options.plan.use_seal_recognition
    if pretty:
        def centered(html: str, collapse_lines: bool = True) -> str:
            return CENTER_DIV.format(collapse(html) if collapse_lines else html)

        text = lambda b: centered(b.content)  # noqa: E731
        image = lambda b: centered(_image_html(b, page_width, ocr_images), not ocr_images)  # noqa: E731
        seal = lambda b: centered(_image_html(b, page_width, seal_rec), not seal_rec)  # noqa: E731
        table = lambda b: "\n" + table_centered(b)  # noqa: E731
    else:
        text = lambda b: b.content  # noqa: E731
        image = partial(_image_plain, show_content=ocr_images)
        seal = partial(_image_plain, show_content=seal_rec)
        table = lambda b: simplify_table("\n" + b.content)  # noqa: E731
    chart = chart_to_html if options.plan.use_chart_recognition else image
    if not options.use_layout:
        seal = text
    return {"text": text, "image": image, "seal": seal, "table": table, "chart": chart}


def handlers(options: "ParseOptions", page: PageResult, pretty: bool) -> dict[str, Handler]:
    """Label → formatter, without the ``markdown_ignore_labels``."""
    k = _kind_funcs(options, page.width, pretty)
    plain = lambda b: b.content  # noqa: E731
    formula = plain
    funcs: dict[str, Handler] = {
        "paragraph_title": format_paragraph_title, "abstract_title": format_title,
        "reference_title": format_title, "content_title": format_title,
        "doc_title": lambda b: collapse(f"# {b.content}"),
        "table_title": k["text"], "figure_title": k["text"], "chart_title": k["text"],
        "vision_footnote": _normalize_newlines, "text": _normalize_newlines, "ocr": _normalize_newlines,
        "vertical_text": _normalize_newlines, "reference_content": _normalize_newlines,
        "abstract": partial(_first_line, templates=["摘要", "abstract"], fmt=lambda line: f"## {line}\n", splitter=" "),
        "content": lambda b: b.content.replace("-\n", "  \n").replace("\n", "  \n"),
        "image": k["image"], "chart": k["chart"], "formula": formula, "display_formula": formula,
        "inline_formula": formula, "table": k["table"],
        "reference": partial(_first_line, templates=["参考文献", "references"], fmt=lambda line: f"## {line}", splitter="\n"),
        "algorithm": lambda b: b.content.strip("\n"), "seal": k["seal"], "spotting": plain,
        "number": plain, "footnote": plain, "header": plain, "header_image": k["image"],
        "footer": plain, "footer_image": k["image"], "aside_text": plain,
    }
    for kind in page.recognized_as_images:  # the engine could not read them
        for name in [n for n in funcs if n == kind or (kind == "formula" and "formula" in n)]:
            funcs[name] = k["image"]
    for label in options.markdown.ignored:
        funcs.pop(label, None)
    return funcs


def merge_formula_number(formula: str, number: str) -> str:
    return "$${} \\tag*{{{}}}$$".format(formula.replace("$$", ""), number)


def page_markdown(page: PageResult, options: Optional["ParseOptions"] = None) -> str:
    """The page's Markdown text: blocks in order, formatted by label, joined by blank lines."""
    options = options or _default_options()
    funcs = handlers(options, page, options.markdown.pretty)
    show_formula_number = options.markdown.show_formula_number
    text = ""
    blocks = page.blocks
    for idx, block in enumerate(blocks):
        if (show_formula_number and block.label in ("display_formula", "formula")
                and idx < len(blocks) - 1 and blocks[idx + 1].label == "formula_number"):
            block = replace(block, content=merge_formula_number(block.content, blocks[idx + 1].content))
        func = funcs.get(block.label)
        if func:
            # PaddleX adds the separator only once something was written.
            text += "\n\n" + func(block) if text else func(block)
    return text


def _default_options() -> "ParseOptions":
    from serve_app.options import ParseOptions

    return ParseOptions()
