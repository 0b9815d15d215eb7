"""Pipeline-level box filtering before cropping (PaddleX ``filter_overlap_boxes``): boxes with
polygons (PP-DocLayoutV3, any shape mode but rect) that overlap as rectangles are dropped only if
their polygons overlap too."""

from __future__ import annotations

import numpy as np

from deployments.datamodel import LayoutBox
from deployments.geometry import pairwise_overlap_small
from deployments.layout.polygons import overlap_ratio

MIN_SIDE = 6  # boxes thinner than this carry nothing readable
OVERLAP_DROP = 0.7  # intersection over the smaller box above which the smaller one goes
INLINE_FORMULA_OVERLAP = 0.5  # inline formulas are read inside their text block
_VISUAL = {"image", "table", "seal", "chart"}


def _keep_both(label_a: str, label_b: str) -> bool:
    """Overlapping visual/non-visual pairs are both kept (a figure and its caption text...)."""
    labels = {label_a, label_b}
    if not (labels & _VISUAL) or len(labels) == 1:
        return False
    return "table" not in labels or labels <= _VISUAL


def filter_overlap_boxes(boxes: list[LayoutBox]) -> list[LayoutBox]:
    """Drop ``reference`` boxes, slivers, inline formulas inside text, and duplicated regions."""
    boxes = [b for b in boxes if b.label != "reference"]
    if not boxes:
        return boxes
    coords = np.array([b.coordinate for b in boxes], dtype=np.float64)
    widths, heights = coords[:, 2] - coords[:, 0], coords[:, 3] - coords[:, 1]
    overlap, areas = pairwise_overlap_small(coords)
    dropped: set[int] = set()
    for i in range(len(boxes)):
        if widths[i] < MIN_SIDE or heights[i] < MIN_SIDE:
            dropped.add(i)
        for j in range(i + 1, len(boxes)):
            if i in dropped or j in dropped:
                continue
            _drop_pair(boxes, i, j, overlap[i, j], areas, dropped)
    return [b for k, b in enumerate(boxes) if k not in dropped]


def _drop_pair(boxes, i, j, ratio, areas, dropped) -> None:
    li, lj = boxes[i].label, boxes[j].label
    if "inline_formula" in (li, lj):
        if ratio > INLINE_FORMULA_OVERLAP:
            dropped.update(k for k in (i, j) if boxes[k].label == "inline_formula")
            return
    if ratio <= OVERLAP_DROP:
        return
    a, b = boxes[i].polygon_points, boxes[j].polygon_points
    if a is not None and overlap_ratio(a, b, "small") < OVERLAP_DROP:
        return
    if not _keep_both(li, lj):
        dropped.add(j if areas[i] >= areas[j] else i)
