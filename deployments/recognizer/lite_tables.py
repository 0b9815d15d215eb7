"""Best-effort tables for engines without a table model: words with boxes (OCR'd lines or a PDF's
text layer) placed on the table's grid, written as OTSL so that the tables of every engine leave
through the same OTSL → HTML conversion.

The grid comes from the table's ruling lines when it has them (long horizontal and vertical runs
of dark pixels), else from the gaps between the words: a column boundary where no word crosses a
vertical band, a row boundary where no word crosses a horizontal one. A word belongs to the cell
its centre falls in; a cell's words are joined in reading order. Merged cells are not recovered.
"""

from __future__ import annotations

import numpy as np

from deployments.recognizer.otsl import ECEL, FCEL, NL
from deployments.textlayer import corners, order_lines

DARK = 128
LINE_SHARE = 0.6  # a ruling line crosses at least this share of the table


def ruling_lines(image: np.ndarray, axis: int) -> list[float]:
    """Positions of ruling lines: rows (``axis`` 0) or columns (1) that are dark across the table."""
    dark = image.min(2) < DARK if image.ndim == 3 else image < DARK
    share = dark.mean(axis=1 - axis)
    positions = np.flatnonzero(share >= LINE_SHARE)
    lines: list[list[int]] = []
    for p in positions:  # a line is a few pixels thick: one position per run
        if lines and p - lines[-1][-1] <= 2:
            lines[-1].append(int(p))
        else:
            lines.append([int(p)])
    return [float(np.mean(run)) for run in lines]


def is_ruled(image: np.ndarray) -> bool:
    """A table drawn with a grid: two or more inner ruling lines in both directions."""
    height, width = image.shape[:2]
    inner = lambda lines, size: [p for p in lines if 3 < p < size - 3]  # noqa: E731
    return len(inner(ruling_lines(image, 0), height)) >= 2 and len(inner(ruling_lines(image, 1), width)) >= 2


def gap_boundaries(starts: np.ndarray, ends: np.ndarray) -> list[float]:
    """Boundaries in the gaps that no interval crosses (the middle of each gap)."""
    order = np.argsort(starts)
    bounds, reach = [], None
    for i in order:
        if reach is not None and starts[i] > reach:
            bounds.append((reach + starts[i]) / 2)
        reach = ends[i] if reach is None else max(reach, ends[i])
    return bounds


def cells_from(lines: list[float], size: int, gaps: list[float]) -> list[float]:
    """Interior cell boundaries: the ruling lines inside the table when it is ruled (two or more),
    else the gaps between words (a table with only a rule under its header is read by its gaps)."""
    inner = [p for p in lines if 3 < p < size - 3]
    return inner if len(inner) >= 2 else gaps


def table_otsl(image: np.ndarray, boxes: np.ndarray, texts: list[str]) -> str:
    """OTSL of a table crop from its words: ``boxes`` (N, 4) x0, y0, x1, y1 in the crop's pixels."""
    if not texts:
        return ""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    height, width = image.shape[:2]
    rows = cells_from(ruling_lines(image, 0), height, gap_boundaries(boxes[:, 1], boxes[:, 3]))
    cols = cells_from(ruling_lines(image, 1), width, gap_boundaries(boxes[:, 0], boxes[:, 2]))
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    row_of, col_of = np.searchsorted(rows, cy), np.searchsorted(cols, cx)
    grid: dict[tuple[int, int], list[int]] = {}
    for i, key in enumerate(zip(row_of.tolist(), col_of.tolist())):
        grid.setdefault(key, []).append(i)
    # Rows and columns without any word are dropped: the band between a border and the crop's edge.
    used_rows, used_cols = sorted({r for r, _ in grid}), sorted({c for _, c in grid})
    out = []
    for r in used_rows:
        for c in used_cols:
            members = grid.get((r, c))
            if members:
                text = order_lines(corners(boxes[members]), [texts[i] for i in members])
                out.append(FCEL + text)
            else:
                out.append(ECEL)
        out.append(NL)
    return "".join(out)
