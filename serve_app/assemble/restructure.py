"""Cross-page restructuring (PaddleX ``restructure_pages``): tables continued on the next page
are merged into one, paragraph titles are re-levelled over the whole document."""

from __future__ import annotations


from deployments.datamodel import BlockResult

_AFTER_TABLE = ("footer", "vision_footnote", "number", "footnote", "footer_image", "seal")
_BEFORE_TABLE = ("header", "header_image", "number", "seal")
MAX_HEADER_ROWS = 5


def _full_to_half(text: str) -> str:
    return "".join(chr(ord(c) - 0xFEE0) if 0xFF01 <= ord(c) <= 0xFF5E else c for c in text)


#: The largest row or column span a table cell may declare: the model writes a few; a span of 10^5
#: would make the column count walk 10^10 cells on the event loop.
MAX_SPAN = 1000


def span(cell, name: str) -> int:
    """A cell's ``colspan``/``rowspan`` (1 when absent), refused when it is not a whole number
    from 1 to ``MAX_SPAN`` (``/restructure-pages`` answers 422 naming it)."""
    value = cell.get(name, 1)
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if not 1 <= number <= MAX_SPAN:
        raise ValueError(f"a table cell has {name}={value!r}; spans must be whole numbers from 1 to {MAX_SPAN}")
    return number


def _total_columns(soup) -> int:
    occupied: dict[int, set] = {}
    max_cols = 0
    for r, row in enumerate(soup.find_all("tr")):
        col = 0
        occupied.setdefault(r, set())
        for cell in row.find_all(["td", "th"]):
            while col in occupied[r]:
                col += 1
            colspan, rowspan = span(cell, "colspan"), span(cell, "rowspan")
            for rr in range(r, r + rowspan):
                occupied.setdefault(rr, set()).update(range(col, col + colspan))
            col += colspan
            max_cols = max(max_cols, col)
    return max_cols


def _header_rows(soup1, soup2) -> int:
    """How many leading rows the two tables share (a repeated header)."""
    rows1, rows2 = soup1.find_all("tr"), soup2.find_all("tr")
    count = 0
    for i in range(min(len(rows1), len(rows2), MAX_HEADER_ROWS)):
        c1, c2 = rows1[i].find_all(["td", "th"]), rows2[i].find_all(["td", "th"])
        if len(c1) != len(c2) or any(
            "".join(_full_to_half(a.get_text()).split()) != "".join(_full_to_half(b.get_text()).split())
            or span(a, "colspan") != span(b, "colspan")
            for a, b in zip(c1, c2)
        ):
            break
        count += 1
    return count


def _rows_match(soup1, soup2) -> bool:
    rows1, rows2 = soup1.find_all("tr"), soup2.find_all("tr")
    if not rows1 or not rows2:
        return False
    header = _header_rows(soup1, soup2)
    if len(rows2) <= header:
        return False
    last, first = rows1[-1], rows2[header]
    cols = lambda row: sum(span(c, "colspan") for c in row.find_all(["td", "th"]))  # noqa: E731
    visual = lambda row: len(row.find_all(["td", "th"]))  # noqa: E731
    return cols(last) == cols(first) or visual(last) == visual(first)


def _mergeable(prev_page, p_idx, curr_page, c_idx):
    from bs4 import BeautifulSoup

    prev, curr = prev_page[p_idx], curr_page[c_idx]
    pw, cw = prev.bbox[2] - prev.bbox[0], curr.bbox[2] - curr.bbox[0]
    if pw == 0 or cw == 0 or abs(cw - pw) / min(cw, pw) >= 0.1:
        return None
    if not all(b.label in _AFTER_TABLE for b in prev_page[p_idx + 1 :]):
        return None
    # PaddleX also accepts "continued" captions, but reads them from attributes VL blocks
    # never have, so in practice only these labels may precede the continued table.
    if not all(b.label in _BEFORE_TABLE for b in curr_page[:c_idx]):
        return None
    if not prev.content or not curr.content:
        return None
    sp, sc = BeautifulSoup(prev.content, "html.parser"), BeautifulSoup(curr.content, "html.parser")
    if _total_columns(sp) == _total_columns(sc) or _rows_match(sp, sc):
        return sp, sc
    return None


def merge_tables_across_pages(pages: list[list[BlockResult]]) -> None:
    """Append a table continued at the top of page i to the last table of page i-1 (in place)."""
    for i in range(len(pages) - 1, 0, -1):
        curr, prev = pages[i], pages[i - 1]
        c_idx = next((k for k, b in enumerate(curr) if b.label == "table"), None)
        p_idx = next((k for k in range(len(prev) - 1, -1, -1) if prev[k].label == "table"), None)
        if c_idx is None or p_idx is None:
            continue
        soups = _mergeable(prev, p_idx, curr, c_idx)
        if soups is None:
            continue
        sp, sc = soups
        rows_prev = sp.find_all("tr")
        for row in sc.find_all("tr")[_header_rows(sp, sc):]:
            row.extract()
            rows_prev[-1].parent.append(row)
        prev[p_idx].content = str(sp)
        curr[c_idx].content = ""
        curr[c_idx].global_group_id = prev[p_idx].global_block_id
    flat = [b for page in pages for b in page]
    for b in flat:
        if b.global_block_id != b.global_group_id:
            b.global_group_id = flat[b.global_group_id].global_group_id
