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
from deployments.textlayer import corners, is_ink, order_lines

LINE_SHARE = 0.6  # a ruling line crosses at least this share of the table


def ruling_lines(image: np.ndarray, axis: int) -> list[float]:
    """Positions of ruling lines: rows (``axis`` 0) or columns (1) that are dark across the table."""
    share = is_ink(image).mean(axis=1 - axis)
    positions = np.flatnonzero(share >= LINE_SHARE)
    lines: list[list[int]] = []
    for p in positions:  # a line is a few pixels thick: one position per run
        if lines and p - lines[-1][-1] <= 2:
            lines[-1].append(int(p))
        else:
            lines.append([int(p)])
    return [float(np.mean(run)) for run in lines]


def inner_rules(image: np.ndarray, axis: int) -> list[float]:
    """The ruling lines inside the table (not its border at the crop's edge) when there are two or
    more, else none: a table with only a rule under its header is not ruled."""
    inner = [p for p in ruling_lines(image, axis) if 3 < p < image.shape[axis] - 3]
    return inner if len(inner) >= 2 else []


def is_ruled(image: np.ndarray) -> bool:
    """A table drawn with a grid: two or more inner ruling lines in both directions."""
    return bool(inner_rules(image, 0)) and bool(inner_rules(image, 1))


def gap_boundaries(starts: np.ndarray, ends: np.ndarray) -> list[float]:
    """Boundaries in the gaps that no interval crosses (the middle of each gap)."""
    order = np.argsort(starts)
    bounds, reach = [], None
    for i in order:
        if reach is not None and starts[i] > reach:
            bounds.append((reach + starts[i]) / 2)
        reach = ends[i] if reach is None else max(reach, ends[i])
    return bounds


def table_otsl(image: np.ndarray, boxes: np.ndarray, texts: list[str]) -> str:
    """OTSL of a table crop from its words: ``boxes`` (N, 4) x0, y0, x1, y1 in the crop's pixels."""
    if not texts:
        return ""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    # Cell boundaries: the inner ruling lines along each axis, else the gaps between words.
    rows = inner_rules(image, 0) or gap_boundaries(boxes[:, 1], boxes[:, 3])
    cols = inner_rules(image, 1) or gap_boundaries(boxes[:, 0], boxes[:, 2])
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
