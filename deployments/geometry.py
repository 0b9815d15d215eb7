"""Box geometry shared by the planning rules (overlap ratios as PaddleX computes them)."""

from __future__ import annotations

import numpy as np


def pairwise_overlap_small(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intersection over the smaller area for every pair, and every box's area."""
    x1, y1, x2, y2 = coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]
    areas = np.abs((x2 - x1) * (y2 - y1))
    iw = np.maximum(0, np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]))
    ih = np.maximum(0, np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]))
    small = np.minimum(areas[:, None], areas[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = np.where(small > 0, iw * ih / small, 0.0)
    return overlap, areas


def intersection_area(a, b) -> float:
    """Area of the intersection of two [x1, y1, x2, y2] boxes (0 when disjoint)."""
    iw = max(0.0, float(min(a[2], b[2])) - float(max(a[0], b[0])))
    ih = max(0.0, float(min(a[3], b[3])) - float(max(a[1], b[1])))
    return iw * ih


def projection_overlap(a, b, direction: str = "horizontal") -> float:
    """1-D IoU of the boxes' projections on the x axis (horizontal) or y axis (vertical)."""
    lo, hi = (0, 2) if direction == "horizontal" else (1, 3)
    overlap = min(a[hi], b[hi]) - max(a[lo], b[lo])
    if overlap <= 0:
        return 0
    ref = max(a[hi], b[hi]) - min(a[lo], b[lo])
    return overlap / ref if ref > 0 else 0.0
