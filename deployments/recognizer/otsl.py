"""OTSL (the table language PaddleOCR-VL emits) to HTML, as PaddleX ``convert_otsl_to_html``.

Tags: ``<fcel>`` full cell, ``<ecel>`` empty cell, ``<lcel>`` merged with the left cell,
``<ucel>`` merged with the cell above, ``<xcel>`` both, ``<nl>`` end of row.
"""

from __future__ import annotations

import html
import itertools
import re
from dataclasses import dataclass

NL, FCEL, ECEL, LCEL, UCEL, XCEL = "<nl>", "<fcel>", "<ecel>", "<lcel>", "<ucel>", "<xcel>"
TAGS = (NL, FCEL, ECEL, LCEL, UCEL, XCEL)
_TAG_GROUP = "(?:<fcel>|<ecel>|<nl>|<lcel>|<ucel>|<xcel>)"
_CELL_RE = re.compile(f"{_TAG_GROUP}.*?(?={_TAG_GROUP}|$)", flags=re.DOTALL)
_SPLIT_RE = re.compile("(" + "|".join(TAGS) + ")")


@dataclass(slots=True)
class Cell:
    row: int
    col: int
    row_span: int
    col_span: int
    text: str


def pad_rows(otsl: str) -> str:
    """Give every row the same number of cells: the width minimising total |len - width|."""
    otsl = otsl.strip()
    if NL not in otsl:
        return otsl + NL
    rows = []
    for line in otsl.split(NL):
        cells = _CELL_RE.findall(line) if line else []
        if cells:
            min_len = max((i + 1 for i, c in enumerate(cells) if c.startswith(FCEL)), default=0)
            rows.append((cells, min_len))
    if not rows:
        return NL
    lo = max(m for _, m in rows)
    hi = max(lo, max(len(c) for c, _ in rows))
    best_cost, width = float("inf"), hi
    for w in range(lo, hi + 1):
        cost = sum(abs(len(c) - w) for c, _ in rows)
        if cost < best_cost:
            best_cost, width = cost, w
    fixed = [cells[:width] if len(cells) > width else cells + [ECEL] * (width - len(cells)) for cells, _ in rows]
    return NL.join("".join(c) for c in fixed) + NL


def _normalise(texts: list[str], rows: list[list[str]]) -> list[str]:
    """Re-emit the token/text stream with every row padded to the widest row."""
    width = max(len(r) for r in rows)
    for r in rows:
        r.extend([ECEL] * (width - len(r)))
    out, k = [], 0
    for r in rows:
        for tok in r:
            out.append(tok)
            if k < len(texts) and texts[k] == tok:
                k += 1
                if k < len(texts) and texts[k] not in TAGS:
                    out.append(texts[k])
                    k += 1
        out.append(NL)
        if k < len(texts) and texts[k] == NL:
            k += 1
    return out


def _span(rows, r, c, dr, dc, kinds) -> int:
    n = 0
    while rows[r][c] in kinds:
        r, c, n = r + dr, c + dc, n + 1
        if r >= len(rows) or c >= len(rows[r]):
            return n
    return n


def parse_cells(otsl: str) -> tuple[list[Cell], list[list[str]]]:
    """Cells with spans, and the tag grid."""
    tokens = _SPLIT_RE.findall(otsl)
    texts = [t for t in _SPLIT_RE.split(otsl) if t.strip()]
    rows = [list(g) for is_nl, g in itertools.groupby(tokens, lambda z: z == NL) if not is_nl]
    if rows:
        texts = _normalise(texts, rows)
    cells, r, c = [], 0, 0
    for i, tok in enumerate(texts):
        if tok in (FCEL, ECEL):
            cells.append(_cell_at(texts, rows, i, r, c))
        if tok in (FCEL, ECEL, LCEL, UCEL, XCEL):
            c += 1
        elif tok == NL:
            r, c = r + 1, 0
    return cells, rows


def _cell_at(texts, rows, i, r, c) -> Cell:
    full = texts[i] != ECEL
    text = texts[i + 1] if full else ""
    step = 2 if full else 1
    right = texts[i + step] if i + step < len(texts) else ""
    below = rows[r + 1][c] if r + 1 < len(rows) and c < len(rows[r + 1]) else ""
    col_span = 1 + (_span(rows, r, c + 1, 0, 1, (LCEL, XCEL)) if right in (LCEL, XCEL) else 0)
    row_span = 1 + (_span(rows, r + 1, c, 1, 0, (UCEL, XCEL)) if below in (UCEL, XCEL) else 0)
    return Cell(r, c, row_span, col_span, text.strip())


def to_html(cells: list[Cell], num_rows: int, num_cols: int) -> str:
    """``<table><tr><td rowspan colspan>…</td></tr></table>``; later cells win overlaps."""
    if not cells:
        return ""
    grid: list[list[Cell | None]] = [[None] * num_cols for _ in range(num_rows)]
    for cell in cells:
        for i in range(min(cell.row, num_rows), min(cell.row + cell.row_span, num_rows)):
            for j in range(min(cell.col, num_cols), min(cell.col + cell.col_span, num_cols)):
                grid[i][j] = cell
    body = []
    for i in range(num_rows):
        body.append("<tr>")
        for j in range(num_cols):
            cell = grid[i][j] or Cell(i, j, 1, 1, "")
            if cell.row != i or cell.col != j:
                continue
            attrs = (f' rowspan="{cell.row_span}"' if cell.row_span > 1 else "") + (
                f' colspan="{cell.col_span}"' if cell.col_span > 1 else "")
            body.append(f"<td{attrs}>{html.escape(cell.text.strip())}</td>")
        body.append("</tr>")
    return "<table>" + "".join(body) + "</table>"


def otsl_to_html(otsl: str) -> str:
    """Convert model OTSL output to an HTML table ("" when it holds no cell)."""
    padded = pad_rows(otsl)
    cells, rows = parse_cells(padded)
    return to_html(cells, len(rows), max((len(r) for r in rows), default=0))
